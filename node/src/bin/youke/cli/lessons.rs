//! Lessons and their media from the command line: import, subtitles, the course-standard check,
//! sharing, the search index, the quarantine and the media jobs.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use super::parse_tier;
use youke_federation::Tier;
use youke_node::NodeCtx;
use youke_node::import::{import_file, share as share_lesson};
use youke_node::lessons::ImportMeta;

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long)]
    pub title: Option<String>,
    #[arg(long)]
    pub teacher: Option<String>,
    #[arg(long)]
    pub grade: Option<String>,
    #[arg(long)]
    pub subject: Option<String>,
    /// A knowledge point (repeat for several).
    #[arg(long = "knowledge", short = 'k')]
    pub knowledge: Vec<String>,
    /// SRT subtitles for the recording (one file only). Without it, an SRT beside each
    /// recording with the same name is attached.
    #[arg(long)]
    pub srt: Option<PathBuf>,
    /// The lecture's language for the subtitles: zh or en (default: from the subject).
    #[arg(long)]
    pub language: Option<String>,
}

pub fn import(data: &Path, args: ImportArgs) -> Result<()> {
    let ImportArgs { files, title, teacher, grade, subject, knowledge, srt, language } = args;
    if srt.is_some() && files.len() > 1 {
        bail!("--srt goes with one recording; for several, put each SRT beside its recording with the same name");
    }
    let ctx = NodeCtx::open_dir(data)?;
    let meta = ImportMeta { title, teacher, grade, subject, knowledge_points: knowledge, original_name: None };
    let mut failed = 0;
    for file in &files {
        let bar = ProgressBar::new(0);
        bar.set_style(ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}").unwrap_or_else(|_| ProgressStyle::default_bar()));
        bar.set_message(file.display().to_string());
        let result = import_file(&ctx, file, &meta, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        });
        bar.finish_and_clear();
        match result {
            Ok(lesson) => {
                println!("{}", lesson.id);
                if let Some(subs) = srt.clone().or_else(|| youke_node::import::sibling_srt(file)) {
                    let attached = std::fs::read(&subs)
                        .map_err(anyhow::Error::from)
                        .and_then(|b| Ok(youke_node::import::attach_subtitles(&ctx, &lesson.id, &b, language.as_deref())?));
                    if let Err(e) = attached {
                        eprintln!("warning: {}: the lesson is imported but its subtitles are not: {e}", subs.display());
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} file(s) were not imported; nothing was stored for them", files.len());
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct SubtitlesArgs {
    pub lesson_id: String,
    pub file: PathBuf,
    /// The lecture's language: zh or en (default: from the subject).
    #[arg(long)]
    pub language: Option<String>,
}

pub fn subtitles(data: &Path, args: SubtitlesArgs) -> Result<()> {
    let SubtitlesArgs { lesson_id, file, language } = args;
    let ctx = NodeCtx::open_dir(data)?;
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let lesson = youke_node::import::attach_subtitles(&ctx, &lesson_id, &bytes, language.as_deref())?;
    let cues = lesson.subtitles.as_ref().map(|s| s.cues).unwrap_or(0);
    println!("{} «{}»: {cues} subtitle cue(s) attached", lesson.id, lesson.title);
    Ok(())
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    pub file: PathBuf,
    /// The lesson's SRT subtitles.
    #[arg(long)]
    pub srt: Option<PathBuf>,
    /// The lecture's language, for rule S1: zh or en.
    #[arg(long, value_parser = parse_language)]
    pub language: Option<youke_media::standard::Language>,
    /// Skip decoding the audio (no SNR estimate for rule A5).
    #[arg(long)]
    pub fast: bool,
    /// Print JSON (the probe and the report) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn check(args: CheckArgs) -> Result<()> {
    let CheckArgs { file, srt, language, fast, json } = args;
    let srt = match &srt {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?),
        None => None,
    };
    let opts = youke_media::standard::CheckOptions { srt, language, measure_snr: !fast, ..Default::default() };
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("checking {}…", file.display()));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let result = youke_media::standard::check_file(&file, &opts);
    spinner.finish_and_clear();
    let (probe, report) = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "file": file, "compliant": report.compliant(), "probe": probe, "report": report }))?);
    } else {
        println!("{}", file.display());
        print!("{}", report.table());
    }
    Ok(())
}

pub fn reindex(data: &Path) -> Result<()> {
    let _lock = youke_node::context::lock_data_dir(data)?;
    let ctx = NodeCtx::open_dir(data)?;
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} lessons ({per_sec}, {eta})").unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.set_message("indexing");
    let started = std::time::Instant::now();
    let n = youke_node::indexer::rebuild(&ctx, data, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    println!("search index rebuilt: {n} lessons in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[derive(Debug, Args)]
pub struct QuarantineArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn quarantine(data: &Path, args: QuarantineArgs) -> Result<()> {
    let QuarantineArgs { json } = args;
    let ctx = NodeCtx::open_dir(data)?;
    let items = ctx.store.read(youke_node::ingest::quarantined)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&items)?);
    } else if items.is_empty() {
        println!("nothing in quarantine");
    } else {
        for q in items {
            println!("{}  {}  {}\n      {}", youke_node::status::format_time(q.at), q.name, q.reason, q.path);
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum MediaCommand {
    /// List the media jobs, newest first.
    Jobs {
        #[arg(long)]
        json: bool,
    },
    /// Cancel a queued or running job.
    Cancel { id: i64 },
    /// Queue a failed or cancelled job again.
    Retry { id: i64 },
}

pub fn media(data: &Path, cmd: MediaCommand) -> Result<()> {
    let ctx = NodeCtx::open_dir(data)?;
    let show = |j: &youke_node::media_jobs::JobInfo| {
        let what = match j.state.as_str() {
            "running" => format!("running {:.0}%", j.progress * 100.0),
            "failed" => format!("failed: {}", j.error.as_deref().unwrap_or("")),
            s => s.to_string(),
        };
        println!("{:>5}  {}  {:36}  {what}", j.id, &j.hash[..12.min(j.hash.len())], j.lesson_id.as_deref().unwrap_or("-"));
    };
    match cmd {
        MediaCommand::Jobs { json } => {
            let jobs = ctx.store.read(youke_node::media_jobs::list)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else if jobs.is_empty() {
                println!("no media jobs");
            } else {
                jobs.iter().for_each(show);
            }
        }
        MediaCommand::Cancel { id } => show(&youke_node::media_jobs::cancel(&ctx, id)?),
        MediaCommand::Retry { id } => show(&youke_node::media_jobs::retry(&ctx, id)?),
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct MediaJobArgs {
    #[arg(long)]
    pub input: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub sd_mp4: bool,
}

pub fn media_job(args: MediaJobArgs) -> Result<()> {
    Ok(youke_node::media_jobs::worker(&args.input, &args.out, args.sd_mp4, &mut std::io::stdout().lock())?)
}

#[derive(Debug, Args)]
pub struct ShareArgs {
    pub lesson_id: String,
    #[arg(long, value_parser = parse_tier)]
    pub to: Tier,
}

pub fn share(data: &Path, args: ShareArgs) -> Result<()> {
    let ShareArgs { lesson_id, to } = args;
    let ctx = NodeCtx::open_dir(data)?;
    let lesson = share_lesson(&ctx, &lesson_id, to)?;
    println!("{} «{}» is now shared at {} level", lesson.id, lesson.title, lesson.share_level);
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// The lessons waiting for this tier's review, oldest first.
    List {
        /// One JSON object per lesson, in an array.
        #[arg(long)]
        json: bool,
    },
    /// Approve a lesson for every school below this node.
    Approve { lesson_id: String },
    /// Reject a lesson, with the reason its teacher reads.
    Reject {
        lesson_id: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct TakedownArgs {
    pub lesson_id: String,
    /// Why, for the teacher and the audit log.
    #[arg(long)]
    pub reason: String,
}

const CLI_MODERATOR: youke_node::lessons::Moderator<'static> = youke_node::lessons::Moderator { user: "cli", address: "command line" };

pub fn review(data: &Path, cmd: ReviewCommand) -> Result<()> {
    use youke_node::lessons::Moderation;
    let ctx = NodeCtx::open_dir(data)?;
    match cmd {
        ReviewCommand::List { json } => {
            let waiting = ctx.store.read(|c| youke_node::lessons::review_queue(c, ctx.writer.tier, 10_000))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&waiting)?);
            } else if waiting.is_empty() {
                println!("no lessons wait for review at this {} node", ctx.writer.tier);
            } else {
                for l in &waiting {
                    println!("{}  «{}»  {} {} {}  from {}", l.id, l.title, l.teacher, l.grade, l.subject, l.origin_name);
                }
            }
        }
        ReviewCommand::Approve { lesson_id } => {
            let l = youke_node::reviewing::moderate(&ctx, &lesson_id, &Moderation::Approve, &CLI_MODERATOR)?;
            println!("{} «{}» approved for every school below this {} node", l.id, l.title, ctx.writer.tier);
        }
        ReviewCommand::Reject { lesson_id, reason } => {
            let l = youke_node::reviewing::moderate(&ctx, &lesson_id, &Moderation::Reject { reason }, &CLI_MODERATOR)?;
            println!("{} «{}» rejected; its teacher will see the reason", l.id, l.title);
        }
    }
    Ok(())
}

pub fn takedown(data: &Path, args: TakedownArgs) -> Result<()> {
    let ctx = NodeCtx::open_dir(data)?;
    let l = youke_node::reviewing::moderate(&ctx, &args.lesson_id, &youke_node::lessons::Moderation::Takedown { reason: args.reason }, &CLI_MODERATOR)?;
    println!("{} «{}» taken down; it disappears below this node with the next sync", l.id, l.title);
    Ok(())
}

fn parse_language(s: &str) -> Result<youke_media::standard::Language, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "zh" | "zh-cn" | "chinese" | "中文" => Ok(youke_media::standard::Language::Chinese),
        "en" | "english" | "英文" => Ok(youke_media::standard::Language::English),
        _ => Err(format!("unknown language {s:?}: expected zh or en")),
    }
}
