//! `youke bench search`: the search index at province scale. Builds an index of generated
//! lessons (search::corpus: realistic titles, teachers, schools, chapters, knowledge points and
//! descriptions) on disk with the node's writer settings, then times Chinese queries of one to
//! three words with a facet filter, as the portal sends them (top 20 with facet counts).

use crate::context::NodeError;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use youke_search::corpus::{self, TOPICS};
use youke_search::{Dim, LessonIndex, Order, Request, WriterOptions};

#[derive(Debug, Clone)]
pub struct SearchBenchOptions {
    pub dir: PathBuf,
    pub lessons: usize,
    /// Queries timed per kind.
    pub queries: usize,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct QueryTimes {
    pub label: &'static str,
    pub p50: Duration,
    pub p99: Duration,
    pub mean_total: f64,
}

#[derive(Debug, Clone)]
pub struct SearchBenchReport {
    pub lessons: usize,
    pub threads: usize,
    pub writer_memory: usize,
    pub generate: Duration,
    pub build: Duration,
    pub merge: Duration,
    pub segments_built: usize,
    pub index_bytes: u64,
    pub peak_rss: u64,
    pub queries: Vec<QueryTimes>,
}


/// A query of `words` words (1 to 3) about a random topic, with one facet filter.
fn query(r: &mut corpus::Rng, words: usize, year_span: (i32, i32)) -> Request {
    let t = r.pick(TOPICS);
    let topic_word = if r.below(2) == 0 { t.title.split([' ', '·', '（', '—']).next().unwrap_or(t.title) } else { r.pick(t.knowledge) };
    let text = match words {
        1 => topic_word.to_string(),
        2 => format!("{} {topic_word}", t.grade),
        _ => format!("{} {} {topic_word}", t.grade, t.subject),
    };
    let filter = match r.below(4) {
        0 => (Dim::Year, (year_span.0 + r.below((year_span.1 - year_span.0 + 1) as usize) as i32).to_string()),
        1 => (Dim::Tier, r.pick(&["school", "city", "province"]).to_string()),
        2 => (Dim::Compliance, r.pick(&["pass", "fail", "unchecked"]).to_string()),
        _ => (Dim::Subject, t.subject.to_string()),
    };
    Request { text, filters: vec![filter], order: Order::Relevance, offset: 0, limit: 20, facets: true, ranked: false }
}

fn pinyin_query(r: &mut corpus::Rng) -> Request {
    let q = *r.pick(&["niudun", "gougudingli", "guanghezuoyong", "yiyuanerci", "oumudinglv", "jingyesi", "ggdl", "nd", "yapianzhanzheng", "ajmd"]);
    Request { text: q.to_string(), filters: Vec::new(), order: Order::Relevance, offset: 0, limit: 20, facets: true, ranked: false }
}

fn time(index: &LessonIndex, label: &'static str, n: usize, mut make: impl FnMut() -> Request) -> Result<QueryTimes, NodeError> {
    // Warm up the page cache and the searcher's caches first.
    for _ in 0..n / 10 {
        index.search(&make())?;
    }
    let mut times = Vec::with_capacity(n);
    let mut totals = 0usize;
    for _ in 0..n {
        let req = make();
        let t = Instant::now();
        let r = index.search(&req)?;
        times.push(t.elapsed());
        totals += r.total;
    }
    times.sort();
    let at = |q: f64| times.get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1))).copied().unwrap_or_default();
    Ok(QueryTimes { label, p50: at(0.50), p99: at(0.99), mean_total: totals as f64 / n.max(1) as f64 })
}

pub fn search(opts: &SearchBenchOptions) -> Result<SearchBenchReport, NodeError> {
    let n = opts.lessons;
    // What generating the lessons costs alone (it is part of the build loop below).
    let started = Instant::now();
    let mut chars = 0usize;
    for i in 0..n {
        let (d, _) = corpus::lesson(opts.seed, i);
        chars += d.title.len() + d.description.len();
    }
    let generate = started.elapsed();
    std::hint::black_box(chars);

    if opts.dir.exists() {
        std::fs::remove_dir_all(&opts.dir).map_err(|source| NodeError::DataDir { path: opts.dir.clone(), source })?;
    }
    let writer = WriterOptions::default();
    let index = LessonIndex::open_with(&opts.dir, writer)?;
    let bar = crate::harness::bench::bar(n as u64, "indexing lessons");
    let started = Instant::now();
    const BATCH: usize = 10_000;
    let mut i = 0;
    while i < n {
        let end = (i + BATCH).min(n);
        index.add_new((i..end).map(|i| corpus::lesson(opts.seed, i).0))?;
        bar.set_position(end as u64);
        i = end;
    }
    index.commit(n as u64)?;
    let build = started.elapsed();
    bar.finish_and_clear();
    let segments_built = index.segments();
    let started = Instant::now();
    index.wait_merges()?;
    let merge = started.elapsed();
    let index_bytes = super::dir_size(&opts.dir);

    let years = (youke_search::year_of(1_600_000_000_000), youke_search::year_of(1_790_000_000_000));
    let mut r = corpus::Rng::new(opts.seed ^ 0x5EA2C4);
    let q = opts.queries;
    let mut queries = Vec::new();
    for (label, words) in [("1 word + facet filter", 1), ("2 words + facet filter", 2), ("3 words + facet filter", 3)] {
        queries.push(time(&index, label, q, || query(&mut r, words, years))?);
    }
    let mut r2 = corpus::Rng::new(opts.seed ^ 0xFACE7);
    queries.push(time(&index, "1-3 words + filter, no facet counts", q, || {
        let words = 1 + r2.below(3);
        Request { facets: false, ..query(&mut r2, words, years) }
    })?);
    let mut r3 = corpus::Rng::new(opts.seed ^ 0x9141);
    queries.push(time(&index, "pinyin or initials", q, || pinyin_query(&mut r3))?);
    Ok(SearchBenchReport {
        lessons: n,
        threads: writer.threads,
        writer_memory: writer.memory,
        generate,
        build,
        merge,
        segments_built,
        index_bytes,
        peak_rss: crate::harness::bench::peak_rss(),
        queries,
    })
}

impl SearchBenchReport {
    pub fn markdown(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let mut out = format!(
            "| lessons | build | build rate | of which generating them | merge to one segment | index size | peak memory |\n|---|---|---|---|---|---|---|\n\
             | {} | {:.1} s ({} threads, {} MiB writer) | {:.0} lessons/s | {:.1} s | {:.1} s (from {} segments) | {:.0} MiB ({:.0} bytes/lesson) | {:.0} MiB |\n\n",
            self.lessons,
            self.build.as_secs_f64(),
            self.threads,
            self.writer_memory >> 20,
            self.lessons as f64 / self.build.as_secs_f64().max(1e-9),
            self.generate.as_secs_f64(),
            self.merge.as_secs_f64(),
            self.segments_built,
            mib(self.index_bytes),
            self.index_bytes as f64 / self.lessons.max(1) as f64,
            mib(self.peak_rss),
        );
        out.push_str("| queries (top 20, relevance) | p50 | p99 | mean matches |\n|---|---|---|---|\n");
        for q in &self.queries {
            out.push_str(&format!("| {} | {:.2} ms | {:.2} ms | {:.0} |\n", q.label, ms(q.p50), ms(q.p99), q.mean_total));
        }
        out
    }
}
