//! Media jobs in a real `youke serve`: an imported recording is transcoded in the background to
//! an HLS ladder that FFmpeg plays over HTTP from the portal; a job killed with the node runs
//! again after the restart; a cancelled job leaves nothing behind and can be retried.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

/// Whether a process whose command line contains `needle` runs (give a killed child a moment).
fn ps_has(needle: &str) -> bool {
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().any(|l| l.contains(needle) && !l.contains("ps -eo"))
}

fn jobs(server: &Server) -> Vec<serde_json::Value> {
    server.get_json("/api/v1/media/jobs").and_then(|v| v.as_array().cloned()).unwrap_or_default()
}

fn job_of<'a>(jobs: &'a [serde_json::Value], lesson: &str) -> Option<&'a serde_json::Value> {
    jobs.iter().find(|j| j["lesson_id"] == lesson)
}

#[test]
fn recordings_become_hls_ladders_that_play_and_jobs_survive_a_killed_node() {
    let dir = tempfile::tempdir().unwrap();
    let (data, http) = standalone_school(dir.path(), "转码学校", |t| t);
    let long = dir.path().join("长 课.mp4");
    make_recording(&long, 40, 2000);
    let short = dir.path().join("短课.mp4");
    make_recording(&short, 30, 1500);

    // Imported while the node is down: the jobs wait in the queue, one runs at a time.
    let long_id = youke_ok(&data, &["import", long.to_str().unwrap(), "--title", "长课"]).trim().to_string();
    let short_id = youke_ok(&data, &["import", short.to_str().unwrap(), "--title", "短课"]).trim().to_string();
    // The same recording imported again as another lesson: one file, one job, one ladder for both.
    let again_id = youke_ok(&data, &["import", short.to_str().unwrap(), "--title", "短课（重传）"]).trim().to_string();
    let mut server = Server::start(&data, http);
    wait_for("the long job to run", Duration::from_secs(30), || {
        let j = jobs(&server);
        (job_of(&j, &long_id)?["state"] == "running").then_some(())
    });
    let j = jobs(&server);
    let short_job = job_of(&j, &short_id).expect("the short job").clone();
    assert_eq!(short_job["state"], "queued", "one job at a time");
    let short_job_id = short_job["id"].as_i64().unwrap().to_string();
    let out = youke_ok(&data, &["media", "cancel", &short_job_id]);
    assert!(out.contains("cancelled"), "{out}");
    // Killed mid-job: after the restart the job runs again and finishes.
    server.kill();
    let server = Server::start(&data, http);
    let done = wait_for("the long job to finish after the restart", Duration::from_secs(240), || {
        let j = jobs(&server);
        let job = job_of(&j, &long_id)?.clone();
        (job["state"] == "done").then_some(job)
    });
    assert!(done["attempts"].as_i64().unwrap() >= 2, "{done}");
    assert!(server.log_text().contains("queued again"), "{}", server.log_text());

    // The lesson shows its ladder; FFmpeg plays the master playlist over HTTP.
    let lesson = server.get_json(&format!("/api/v1/lessons/{long_id}")).unwrap();
    let hls = &lesson["hls"];
    let names: Vec<&str> = hls["renditions"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["720p", "480p", "360p"], "{lesson}");
    let master = server.url(hls["master_url"].as_str().unwrap());
    let out = Command::new("ffmpeg").args(["-v", "error", "-i", &master, "-map", "0", "-f", "null", "-"]).output().unwrap();
    assert!(out.status.success(), "ffmpeg cannot play {master}: {}", String::from_utf8_lossy(&out.stderr));
    let probe = Command::new("ffprobe").args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", &master]).output().unwrap();
    let secs: f64 = String::from_utf8_lossy(&probe.stdout).trim().parse().unwrap_or(0.0);
    assert!((secs - 40.0).abs() < 1.0, "the ladder lasts {secs} s");
    let page = String::from_utf8(server.get_bytes(&format!("/lessons/{long_id}")).unwrap()).unwrap();
    assert!(page.contains(&format!(r#"<source src="{}" type="application/vnd.apple.mpegurl">"#, hls["master_url"].as_str().unwrap())), "{page}");
    assert!(page.contains(r#" poster="/media/hls/"#), "{page}");
    let poster = ureq::get(&server.url(hls["poster_url"].as_str().unwrap())).call().unwrap();
    assert_eq!(poster.headers().get("content-type").unwrap(), "image/jpeg");
    let hash = lesson["media"]["hash"].as_str().unwrap();
    for bad in [format!("/media/hls/{hash}/..%2F..%2Fyouke.db"), format!("/media/hls/{hash}/master.txt"), "/media/hls/nothex/master.m3u8".to_string()] {
        assert!(ureq::get(&server.url(&bad)).call().is_err(), "{bad} must not be served");
    }

    // The cancelled job, retried, runs; cancelled while running, its child is killed and its
    // partial output removed; retried again, it finishes.
    youke_ok(&data, &["media", "retry", &short_job_id]);
    wait_for("the short job to run", Duration::from_secs(30), || {
        let j = jobs(&server);
        (job_of(&j, &short_id)?["state"] == "running").then_some(())
    });
    youke_ok(&data, &["media", "cancel", &short_job_id]);
    let short_hash = short_job["hash"].as_str().unwrap().to_string();
    // The job may have been cancelled before it wrote anything: wait for the child itself to go
    // (killed at the runner's next tick, within a second), then for its output.
    wait_for("the running job's child to be killed", Duration::from_secs(10), || (!ps_has(&short_hash)).then_some(()));
    wait_for("the running job's output to go", Duration::from_secs(10), || {
        (!data.join("media/hls").join(format!("{short_hash}.partial")).exists()).then_some(())
    });
    assert!(!data.join("media/hls").join(&short_hash).exists());
    youke_ok(&data, &["media", "retry", &short_job_id]);
    wait_for("the retried job to finish", Duration::from_secs(120), || {
        let j = jobs(&server);
        (job_of(&j, &short_id)?["state"] == "done").then_some(())
    });
    let listed = youke_ok(&data, &["media", "jobs"]);
    assert!(listed.lines().filter(|l| l.contains("done")).count() >= 2, "{listed}");
    let status = youke_ok(&data, &["status"]);
    assert!(status.contains("transcode") && status.contains("2 done"), "{status}");
    let ladder = |id: &str| wait_for("the ladder recorded", Duration::from_secs(20), || server.get_json(&format!("/api/v1/lessons/{id}")).filter(|l| !l["ladder"].is_null()).map(|l| l["ladder"].clone()));
    let first = ladder(&short_id);
    assert_eq!(ladder(&again_id), first, "both lessons of one recording travel with its one pack");

    // Imported a third time, once transcoded: the ladder at once, no job.
    drop(server);
    let third_id = youke_ok(&data, &["import", short.to_str().unwrap(), "--title", "短课（第三次）"]).trim().to_string();
    let server = Server::start(&data, http);
    let third = server.get_json(&format!("/api/v1/lessons/{third_id}")).unwrap();
    assert_eq!(third["ladder"], first, "{third}");
    assert_eq!(jobs(&server).len(), 2, "no job for a recording transcoded already");
}
