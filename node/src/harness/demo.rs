//! `youke demo`: a province, a city and a school node on 127.0.0.1 in one process, with sample
//! lessons synthesized by FFmpeg, two of them shared up to the province.

use crate::config::Config;
use crate::import::{import_file, share};
use crate::lessons::ImportMeta;
use crate::context::NodeError;
use crate::services::{Node, RunningNode};
use crate::lessons;
use indicatif::{ProgressBar, ProgressStyle};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use youke_federation::{BlobHash, Tier};
use youke_media::SynthSpec;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub dir: PathBuf,
    /// The province portal listens here, the city on +1, the school on +2.
    pub base_port: u16,
}

struct Sample {
    title: &'static str,
    teacher: &'static str,
    grade: &'static str,
    subject: &'static str,
    knowledge: &'static [&'static str],
    share: Tier,
    tone_hz: f32,
}

const SAMPLES: &[Sample] = &[
    Sample { title: "勾股定理", teacher: "王芳", grade: "八年级", subject: "数学", knowledge: &["直角三角形", "勾股数"], share: Tier::Province, tone_hz: 440.0 },
    Sample { title: "牛顿第一定律", teacher: "李明", grade: "八年级", subject: "物理", knowledge: &["惯性", "力与运动"], share: Tier::Province, tone_hz: 523.0 },
    Sample { title: "一元二次方程的解法", teacher: "赵强", grade: "九年级", subject: "数学", knowledge: &["配方法", "求根公式"], share: Tier::City, tone_hz: 587.0 },
    Sample { title: "静夜思", teacher: "张华", grade: "一年级", subject: "语文", knowledge: &["古诗", "李白"], share: Tier::School, tone_hz: 659.0 },
];

const MARKER: &str = ".youke-demo";

fn prepare_dir(dir: &Path) -> Result<(), NodeError> {
    let io = |source| NodeError::DataDir { path: dir.to_path_buf(), source };
    if dir.exists() {
        for tier in ["province", "city", "school"] {
            if crate::context::is_serving(&dir.join(tier)) {
                return Err(NodeError::Invalid(format!(
                    "a demo is already running in {}; stop it (Ctrl-C) or choose another --dir",
                    dir.display()
                )));
            }
        }
        let empty = std::fs::read_dir(dir).map_err(io)?.next().is_none();
        if !empty && !dir.join(MARKER).exists() {
            return Err(NodeError::Invalid(format!(
                "{} exists and is not a demo directory; choose another with --dir",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(dir).map_err(io)?;
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::write(dir.join(MARKER), b"made by youke demo; deleted by the next demo run\n").map_err(io)?;
    Ok(())
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Saves the node's config in its data directory (so `youke status --data ...` works on it)
/// and starts it.
/// The node enrolls under `parent` with a join token first, as an operator would.
pub(crate) async fn start(dir: &Path, config: Config, parent: Option<&RunningNode>, cancel: &CancellationToken) -> Result<RunningNode, NodeError> {
    std::fs::create_dir_all(dir).map_err(|source| NodeError::DataDir { path: dir.to_path_buf(), source })?;
    config.save(dir)?;
    crate::trust::join_locally(dir, &config, parent.map(|p| (p.ctx.as_ref(), p.quic_addr))).await?;
    Node::spawn(dir, config, cancel.child_token()).await
}

/// Runs the demo until `cancel` fires.
pub async fn run(opts: DemoOptions, cancel: CancellationToken) -> Result<(), NodeError> {
    prepare_dir(&opts.dir)?;
    let base = opts.base_port;
    let province_cfg = Config { role: Tier::Province, name: "河北省优课中心".into(), http: local(base), quic: local(0), ..Config::default() };
    let province = start(&opts.dir.join("province"), province_cfg, None, &cancel).await?;
    let city_cfg = Config {
        role: Tier::City,
        name: "石家庄市教育局".into(),
        http: local(base.saturating_add(1)),
        quic: local(0),
        parent: Some(province.quic_addr.to_string()),
        ..Config::default()
    };
    let city = start(&opts.dir.join("city"), city_cfg, Some(&province), &cancel).await?;
    let school_cfg = Config {
        role: Tier::School,
        name: "石家庄市第一中学".into(),
        http: local(base.saturating_add(2)),
        quic: local(0),
        parent: Some(city.quic_addr.to_string()),
        ..Config::default()
    };
    let school = start(&opts.dir.join("school"), school_cfg, Some(&city), &cancel).await?;

    // One account per role at every tier, so each page of the portal can be tried.
    const DEMO_PASSWORD: &str = "youke-demo";
    for node in [&province, &city, &school] {
        for role in crate::accounts::Role::ALL {
            node.ctx.store.write(|tx| crate::accounts::create_user(tx, role.as_str(), role.zh(), role, DEMO_PASSWORD).map(drop)).map_err(|e| NodeError::Invalid(e.to_string()))?;
        }
    }

    let started = Instant::now();
    let shared = make_lessons(&opts.dir, &school).await?;

    println!();
    println!("优课 Youke demo: three tiers on this machine");
    println!("  province  {}  http://{}/", province.ctx.writer.node_name, province.http_addr);
    println!("  city      {}  http://{}/", city.ctx.writer.node_name, city.http_addr);
    println!("  school    {}  http://{}/", school.ctx.writer.node_name, school.http_addr);
    println!("  accounts on each: admin, teacher, expert, viewer; password {DEMO_PASSWORD}");
    println!();

    let arrived = wait_for_lessons(&province, &shared, Duration::from_secs(120), &cancel).await?;
    if arrived {
        println!(
            "The {} lessons shared to the province arrived there with their media {:.1} s after the import began:",
            shared.len(),
            started.elapsed().as_secs_f64()
        );
        for id in &shared {
            println!("  http://{}/lessons/{id}", province.http_addr);
        }
        println!(
            "They wait in the province's review queue (审核) until a reviewer approves them for every school of the province:\n  http://{}/review  (sign in as expert or admin)",
            province.http_addr
        );
    } else if !cancel.is_cancelled() {
        println!("The shared lessons have not reached the province yet; see `youke status --data {}`.", opts.dir.join("school").display());
    }
    println!("\nPress Ctrl-C to stop the three nodes.");
    cancel.cancelled().await;
    for node in [school, city, province] {
        node.shutdown().await;
    }
    Ok(())
}

async fn make_lessons(dir: &Path, school: &RunningNode) -> Result<Vec<String>, NodeError> {
    let samples_dir = dir.join("samples");
    std::fs::create_dir_all(&samples_dir).map_err(|source| NodeError::DataDir { path: samples_dir.clone(), source })?;
    let bar = ProgressBar::new(SAMPLES.len() as u64 * 100);
    bar.set_style(
        ProgressStyle::with_template("{msg:24} [{bar:30}] {percent:>3}%").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut shared = Vec::new();
    for (i, s) in SAMPLES.iter().enumerate() {
        bar.set_message(format!("合成示例课程 {}", s.title));
        let path = samples_dir.join(format!("{}.mp4", s.title));
        let spec = SynthSpec { width: 1280, height: 720, seconds: 12.0, video_bit_rate: 2_500_000, tone_hz: s.tone_hz, variant: i as u32, ..SynthSpec::small() };
        let (p, b, base) = (path.clone(), bar.clone(), i as u64 * 100);
        tokio::task::spawn_blocking(move || youke_media::synthesize(&p, &spec, |f| b.set_position(base + (f * 100.0) as u64)))
            .await
            .map_err(|e| NodeError::Invalid(e.to_string()))??;
        let ctx = std::sync::Arc::clone(&school.ctx);
        let meta = ImportMeta {
            title: Some(s.title.into()),
            teacher: Some(s.teacher.into()),
            grade: Some(s.grade.into()),
            subject: Some(s.subject.into()),
            knowledge_points: s.knowledge.iter().map(|k| k.to_string()).collect(),
            original_name: None,
        };
        let level = s.share;
        let lesson = tokio::task::spawn_blocking(move || -> Result<lessons::Lesson, NodeError> {
            let l = import_file(&ctx, &path, &meta, |_, _| {})?;
            if level > Tier::School { share(&ctx, &l.id, level) } else { Ok(l) }
        })
        .await
        .map_err(|e| NodeError::Invalid(e.to_string()))??;
        if lesson.share_level == Tier::Province {
            shared.push(lesson.id);
        }
    }
    bar.finish_and_clear();
    Ok(shared)
}

/// Waits until the node holds all these lessons and their media.
async fn wait_for_lessons(node: &RunningNode, ids: &[String], timeout: Duration, cancel: &CancellationToken) -> Result<bool, NodeError> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && !cancel.is_cancelled() {
        let mut all = true;
        for id in ids {
            let l = node.ctx.store.read(|c| lessons::get(c, id))?;
            let present = l
                .and_then(|l| l.media)
                .and_then(|m| m.hash.parse::<BlobHash>().ok())
                .is_some_and(|h| node.ctx.blobs.contains(&h));
            all &= present;
        }
        if all {
            return Ok(true);
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    Ok(false)
}
