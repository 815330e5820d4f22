//! Youke search: a tantivy full-text index of lessons for Chinese queries.
//!
//! Words are segmented with jieba (search mode), parts of words are found through character
//! bigrams, and pinyin typed without an input method through prefix search over the pinyin and
//! initials of every title, chapter, knowledge point, teacher and school (see [`analysis`]).
//! Facets (grade, subject, school, teacher, year, tier of origin, compliance) are counted over
//! the whole result set and filter it; results are ordered by relevance blended with popularity
//! and rating, or by views, rating or date ([`Order`]).
//!
//! The index is derived data: the node rebuilds it from SQLite whenever it is missing or
//! corrupt. Each commit carries the node's document change sequence number it covers as its
//! payload, so after a restart the node indexes only what changed since.

pub mod analysis;
pub mod corpus;
mod facets;
mod highlight;

pub use analysis::{analyzer, bigrams, terms};
pub use highlight::{Marked, mark};

use std::path::Path;
use std::sync::Mutex;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, BoostQuery, DisjunctionMaxQuery, Occur, Query, RegexQuery, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
    Value,
};
use tantivy::{DocAddress, DocId, Index, Searcher, IndexReader, IndexWriter, Order as SortOrder, ReloadPolicy, Score, SegmentReader, TantivyDocument, Term};

const WORDS: &str = "zh_jieba";
const BIGRAMS: &str = "zh_bigram";
const PINYIN: &str = "zh_pinyin";
const INITIALS: &str = "zh_initials";

/// Weight of a bigram match (part of a word) relative to a whole word in the title.
const BIGRAM_BOOST: f32 = 0.5;
/// Weights of a pinyin and an initials prefix match.
const PINYIN_BOOST: f32 = 1.5;
const INITIALS_BOOST: f32 = 1.0;
/// Deepest result a query may page to.
pub const MAX_DEPTH: usize = 10_000;
/// Values listed per facet.
pub const FACET_VALUES: usize = 30;
/// Moments listed per hit.
pub const MAX_MOMENTS: usize = 3;
/// Longest snippet, in characters.
const SNIPPET_CHARS: usize = 120;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index at {path} cannot be opened ({reason}); it will be rebuilt from the database")]
    Corrupt { path: String, reason: String },
    #[error("cannot prepare search index directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("search index writer is unavailable after an earlier failure")]
    Poisoned,
    #[error("results beyond the first {MAX_DEPTH} cannot be paged to; narrow the search with filters")]
    TooDeep,
}

/// What the index knows of a lesson.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LessonDoc {
    pub id: String,
    pub title: String,
    pub teacher: String,
    /// The school (or other node) the lesson comes from.
    pub school: String,
    pub subject: String,
    pub grade: String,
    pub textbook_chapter: String,
    pub knowledge_points: Vec<String>,
    pub tags: Vec<String>,
    pub description: String,
    /// Subtitle cues: start in milliseconds, text.
    pub cues: Vec<(u64, String)>,
    /// Tier of the node the lesson comes from: school, city or province.
    pub origin_tier: String,
    /// Course video standard: pass, fail or unchecked.
    pub compliance: String,
    pub created_at_ms: i64,
    pub views: u64,
    pub rating_avg: f64,
    pub rating_count: u64,
}

/// A facet dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    Grade,
    Subject,
    School,
    Teacher,
    Year,
    Tier,
    Compliance,
}

impl Dim {
    pub const ALL: [Dim; 7] = [Dim::Grade, Dim::Subject, Dim::School, Dim::Teacher, Dim::Year, Dim::Tier, Dim::Compliance];

    pub fn as_str(self) -> &'static str {
        match self {
            Dim::Grade => "grade",
            Dim::Subject => "subject",
            Dim::School => "school",
            Dim::Teacher => "teacher",
            Dim::Year => "year",
            Dim::Tier => "tier",
            Dim::Compliance => "compliance",
        }
    }

    pub fn parse(s: &str) -> Option<Dim> {
        Dim::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// How results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// BM25 blended with popularity and rating (newest first without query text):
    /// `score = bm25 × (1 + 0.2 × log10(1 + views) / 6) × (1 + 0.2 × (rating − 3) / 2)`, where
    /// `rating` is the Bayesian average `(5 × 3 + Σ stars) / (5 + n)`. A lesson with a million
    /// views weighs at most 1.2 times an unseen one, a five-star lesson with many ratings 1.2
    /// times an average one: the text decides, popularity breaks near-ties.
    #[default]
    Relevance,
    /// Most viewed first (人气榜).
    MostViewed,
    /// Best rated first, by the Bayesian average (好评榜), so one five-star vote does not top
    /// the list.
    BestRated,
    /// Newest first.
    Newest,
}

impl Order {
    pub const ALL: [Order; 4] = [Order::Relevance, Order::MostViewed, Order::BestRated, Order::Newest];

    pub fn as_str(self) -> &'static str {
        match self {
            Order::Relevance => "relevance",
            Order::MostViewed => "views",
            Order::BestRated => "rating",
            Order::Newest => "newest",
        }
    }

    pub fn parse(s: &str) -> Option<Order> {
        Order::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// The Bayesian average rating used by [`Order::BestRated`] and the relevance blend.
pub fn bayes_rating(avg: f64, count: u64) -> f64 {
    const PRIOR: f64 = 3.0;
    const WEIGHT: f64 = 5.0;
    if count == 0 || !avg.is_finite() {
        return PRIOR;
    }
    (WEIGHT * PRIOR + avg.clamp(0.0, 5.0) * count as f64) / (WEIGHT + count as f64)
}

fn blend(bm25: Score, views: u64, rating: f64) -> Score {
    let v = 1.0 + 0.2 * ((1.0 + views as f64).log10() / 6.0).min(1.0);
    let r = 1.0 + 0.2 * ((rating - 3.0) / 2.0).clamp(-1.0, 1.0);
    (bm25 as f64 * v * r) as Score
}

/// A search.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Request {
    pub text: String,
    /// (dimension, value): values of one dimension are alternatives, dimensions combine.
    pub filters: Vec<(Dim, String)>,
    pub order: Order,
    pub offset: usize,
    pub limit: usize,
    /// Count facet values over the whole result set.
    pub facets: bool,
    /// A ranking (人气榜, 好评榜): ordered by views or rating, it leaves out the lessons nobody
    /// watched or rated.
    pub ranked: bool,
}

impl Request {
    pub fn text(text: &str, limit: usize) -> Request {
        Request { text: text.to_string(), filters: Vec::new(), order: Order::Relevance, offset: 0, limit, facets: false, ranked: false }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub score: f32,
    /// The title with the matching words found; `None` when the title did not match (show it
    /// as it is).
    pub title_marks: Option<Marked>,
    /// A passage of the description around the matching words.
    pub snippet_marks: Option<Marked>,
    /// Subtitle cues that match the query (at most [`MAX_MOMENTS`]), so a viewer can jump to
    /// the moment something is said.
    pub moments: Vec<Moment>,
}

/// A moment in a lesson where the query is spoken.
#[derive(Debug, Clone, PartialEq)]
pub struct Moment {
    pub start_ms: u64,
    pub text: String,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Results {
    /// Lessons matching, in all.
    pub total: usize,
    pub hits: Vec<Hit>,
    /// Per dimension, its values with counts, most frequent first (when asked for).
    pub facets: FacetCounts,
}

/// What one pass over a query's matches gives: how many, the requested page, the facet counts.
type Collected = (usize, Vec<(Score, DocAddress)>, FacetCounts);

/// Per dimension, (value, lessons) most frequent first.
pub type FacetCounts = Vec<(Dim, Vec<(String, u64)>)>;

#[derive(Debug, Clone, Copy)]
struct Fields {
    id: Field,
    title: Field,
    teacher: Field,
    school: Field,
    subject: Field,
    grade: Field,
    chapter: Field,
    knowledge: Field,
    tags: Field,
    description: Field,
    subtitles: Field,
    bigrams: Field,
    pinyin: Field,
    initials: Field,
    /// One raw, fast string field per facet dimension, in [`Dim::ALL`] order.
    dims: [Field; 7],
    /// The cues as JSON (start, text), stored to find the moments of a hit.
    cues: Field,
    views: Field,
    rating: Field,
    created: Field,
    /// `viewed` when a lesson has views, `rated` when it has ratings: the rankings (人气榜,
    /// 好评榜) list only lessons with some.
    ranked: Field,
}

impl Fields {
    /// The word fields and their weights.
    fn words(&self) -> [(Field, f32); 10] {
        [
            (self.title, 3.0),
            (self.knowledge, 2.0),
            (self.chapter, 2.0),
            (self.tags, 1.5),
            (self.teacher, 1.5),
            (self.school, 1.2),
            (self.subject, 1.0),
            (self.grade, 1.0),
            (self.description, 0.8),
            (self.subtitles, 0.5),
        ]
    }
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let indexing = |tokenizer: &str, record: IndexRecordOption| TextFieldIndexing::default().set_tokenizer(tokenizer).set_index_option(record);
    let words = TextOptions::default().set_indexing_options(indexing(WORDS, IndexRecordOption::WithFreqs));
    let stored_words = words.clone().set_stored();
    // Prefix-searched tokens: no scoring, so no frequencies.
    let basic = |tokenizer: &str| TextOptions::default().set_indexing_options(indexing(tokenizer, IndexRecordOption::Basic).set_fieldnorms(false));
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        title: b.add_text_field("title", stored_words.clone()),
        teacher: b.add_text_field("teacher", words.clone()),
        school: b.add_text_field("school", words.clone()),
        subject: b.add_text_field("subject", words.clone()),
        grade: b.add_text_field("grade", words.clone()),
        chapter: b.add_text_field("textbook_chapter", words.clone()),
        knowledge: b.add_text_field("knowledge_points", words.clone()),
        tags: b.add_text_field("tags", words.clone()),
        description: b.add_text_field("description", stored_words),
        subtitles: b.add_text_field("subtitles", words),
        bigrams: b.add_text_field("bigrams", TextOptions::default().set_indexing_options(indexing(BIGRAMS, IndexRecordOption::WithFreqs))),
        pinyin: b.add_text_field("pinyin", basic(PINYIN)),
        initials: b.add_text_field("initials", basic(INITIALS)),
        dims: Dim::ALL.map(|d| b.add_text_field(&facets::field_name(d), STRING | FAST)),
        cues: b.add_text_field("cues", STORED),
        views: b.add_u64_field("views", FAST),
        rating: b.add_f64_field("rating", FAST),
        created: b.add_i64_field("created", FAST | INDEXED),
        ranked: b.add_text_field("ranked", STRING),
    };
    (b.build(), fields)
}

const RANKED_VIEWED: &str = "viewed";
const RANKED_RATED: &str = "rated";

/// The year (China Standard Time, UTC+8) of a Unix time in milliseconds.
pub fn year_of(ms: i64) -> i32 {
    let days = (ms + 8 * 3_600_000).div_euclid(86_400_000);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2)) as i32
}

/// The facet values of a lesson, empty values as "" is not a value anyone filters by.
fn facet_values(d: &LessonDoc) -> Vec<(Dim, String)> {
    let or_unknown = |s: &str| if s.trim().is_empty() { "unknown".to_string() } else { s.trim().to_string() };
    let mut out = vec![
        (Dim::Year, year_of(d.created_at_ms).to_string()),
        (Dim::Tier, or_unknown(&d.origin_tier)),
        (Dim::Compliance, if d.compliance.is_empty() { "unchecked".into() } else { d.compliance.clone() }),
    ];
    for (dim, v) in [(Dim::Grade, &d.grade), (Dim::Subject, &d.subject), (Dim::School, &d.school), (Dim::Teacher, &d.teacher)] {
        if !v.trim().is_empty() {
            out.push((dim, v.trim().to_string()));
        }
    }
    out
}

/// The cues that contain a word of the query, in time order, at most [`MAX_MOMENTS`].
fn moments(cues: &[(u64, String)], words: &[String]) -> Vec<Moment> {
    if words.is_empty() {
        return Vec::new();
    }
    cues.iter()
        .filter(|(_, text)| {
            let cue_terms = terms(text);
            words.iter().any(|w| cue_terms.contains(w))
        })
        .take(MAX_MOMENTS)
        .map(|(start_ms, text)| Moment { start_ms: *start_ms, text: text.clone() })
        .collect()
}

/// Escapes a regular expression's special characters (pinyin queries are letters, but be safe).
fn regex_literal(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

/// Index writer settings.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Indexing threads.
    pub threads: usize,
    /// Memory budget of all threads together, in bytes.
    pub memory: usize,
}

impl Default for WriterOptions {
    /// Two threads and 64 MiB: a school appliance has two cores and little memory to spare.
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 2);
        WriterOptions { threads, memory: 64 << 20 }
    }
}

/// The lesson index.
pub struct LessonIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    cache: Mutex<ResultCache>,
}

/// Results of recent searches, for the searcher generation they were computed on: the same
/// search again (the home page's rankings, a class searching for its lesson) is answered
/// without running it, until the next commit makes a new generation and empties the cache.
#[derive(Debug, Default)]
struct ResultCache {
    generation: u64,
    entries: std::collections::HashMap<Request, (Results, u64)>,
    tick: u64,
}

/// Searches remembered per generation.
pub const RESULT_CACHE_ENTRIES: usize = 512;

impl ResultCache {
    fn get(&mut self, generation: u64, req: &Request) -> Option<Results> {
        if generation != self.generation {
            self.entries.clear();
            self.generation = generation;
            return None;
        }
        self.tick += 1;
        let tick = self.tick;
        let (r, last) = self.entries.get_mut(req)?;
        *last = tick;
        Some(r.clone())
    }

    fn put(&mut self, generation: u64, req: Request, results: Results) {
        if generation != self.generation {
            self.entries.clear();
            self.generation = generation;
        }
        if self.entries.len() >= RESULT_CACHE_ENTRIES
            && let Some(oldest) = self.entries.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
        self.tick += 1;
        self.entries.insert(req, (results, self.tick));
    }
}

impl std::fmt::Debug for LessonIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LessonIndex").finish_non_exhaustive()
    }
}

impl LessonIndex {
    /// Opens the index in `dir`, creating it if the directory is empty. An index that exists
    /// but cannot be opened (corrupt, or an older schema) is reported as [`SearchError::Corrupt`].
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        Self::open_with(dir, WriterOptions::default())
    }

    pub fn open_with(dir: &Path, opts: WriterOptions) -> Result<Self, SearchError> {
        let corrupt = |reason: String| SearchError::Corrupt { path: dir.display().to_string(), reason };
        std::fs::create_dir_all(dir)?;
        // tantivy may panic on files it did not write (a damaged disk, a half-copied backup):
        // that is a corrupt index too, not a crash of the node.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Self::open_checked(dir, opts)))
            .unwrap_or_else(|_| Err(corrupt("reading it failed (see the panic message above)".into())))
    }

    fn open_checked(dir: &Path, opts: WriterOptions) -> Result<Self, SearchError> {
        let corrupt = |reason: String| SearchError::Corrupt { path: dir.display().to_string(), reason };
        let (schema, fields) = schema();
        let index = if dir.join("meta.json").exists() {
            let index = Index::open_in_dir(dir).map_err(|e| corrupt(e.to_string()))?;
            if index.schema() != schema {
                return Err(corrupt("its schema is from another version".into()));
            }
            // Every file's checksum, so damage is found now rather than mid-query.
            let damaged = index.validate_checksum().map_err(|e| corrupt(e.to_string()))?;
            if !damaged.is_empty() {
                let mut names: Vec<String> = damaged.iter().map(|p| p.display().to_string()).collect();
                names.sort();
                return Err(corrupt(format!("damaged files: {}", names.join(", "))));
            }
            index
        } else {
            Index::create_in_dir(dir, schema)?
        };
        Self::with_index(index, fields, opts).map_err(|e| corrupt(e.to_string()))
    }

    /// Opens the index in `dir`, deleting and recreating it if it is corrupt. Returns whether it
    /// was recreated (the caller then reindexes everything).
    pub fn open_or_recreate(dir: &Path) -> Result<(Self, bool), SearchError> {
        match Self::open(dir) {
            Ok(i) => Ok((i, false)),
            Err(SearchError::Corrupt { reason, .. }) => {
                tracing::warn!(dir = %dir.display(), %reason, "search index unusable; rebuilding it");
                std::fs::remove_dir_all(dir)?;
                Ok((Self::open(dir)?, true))
            }
            Err(e) => Err(e),
        }
    }

    /// An index in memory, for tests.
    pub fn in_memory() -> Result<Self, SearchError> {
        let (schema, fields) = schema();
        Self::with_index(Index::create_in_ram(schema), fields, WriterOptions { threads: 1, memory: 20 << 20 })
    }

    fn with_index(index: Index, fields: Fields, opts: WriterOptions) -> Result<Self, SearchError> {
        let t = index.tokenizers();
        t.register(WORDS, analysis::analyzer());
        t.register(BIGRAMS, analysis::bigram_analyzer());
        t.register(PINYIN, analysis::pinyin_analyzer());
        t.register(INITIALS, analysis::initials_analyzer());
        let threads = opts.threads.max(1);
        let writer = index.writer_with_num_threads(threads, opts.memory.max((threads * 16) << 20))?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(LessonIndex { index, reader, writer: Mutex::new(writer), fields, cache: Mutex::default() })
    }

    /// The change sequence number the last commit covers (0 for a new index).
    pub fn indexed_seq(&self) -> u64 {
        self.index.load_metas().ok().and_then(|m| m.payload).and_then(|p| p.parse().ok()).unwrap_or(0)
    }

    fn document(&self, d: &LessonDoc) -> TantivyDocument {
        let f = self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.id, &d.id);
        for (field, text) in [
            (f.title, &d.title),
            (f.teacher, &d.teacher),
            (f.school, &d.school),
            (f.subject, &d.subject),
            (f.grade, &d.grade),
            (f.chapter, &d.textbook_chapter),
            (f.description, &d.description),
        ] {
            if !text.is_empty() {
                doc.add_text(field, text);
            }
        }
        for k in &d.knowledge_points {
            doc.add_text(f.knowledge, k);
        }
        for t in &d.tags {
            doc.add_text(f.tags, t);
        }
        // Bigrams for the title, chapter, knowledge points and tags (parts of words); pinyin for
        // the title, knowledge points and teacher (what is typed without an input method). The
        // description and subtitles get words only; school names are found by their words.
        for text in [&d.title, &d.textbook_chapter].into_iter().chain(&d.knowledge_points).chain(&d.tags).filter(|s| !s.is_empty()) {
            doc.add_text(f.bigrams, text);
        }
        for text in [&d.title, &d.teacher].into_iter().chain(&d.knowledge_points).filter(|s| !s.is_empty()) {
            doc.add_text(f.pinyin, text);
            doc.add_text(f.initials, text);
        }
        if !d.cues.is_empty() {
            for (_, t) in &d.cues {
                doc.add_text(f.subtitles, t);
            }
            let json: Vec<(u64, &str)> = d.cues.iter().map(|(s, t)| (*s, t.as_str())).collect();
            doc.add_text(f.cues, serde_json::to_string(&json).unwrap_or_default());
        }
        for (dim, v) in facet_values(d) {
            doc.add_text(f.dims[dim as usize], &v);
        }
        doc.add_u64(f.views, d.views);
        doc.add_f64(f.rating, bayes_rating(d.rating_avg, d.rating_count));
        if d.views > 0 {
            doc.add_text(f.ranked, RANKED_VIEWED);
        }
        if d.rating_count > 0 {
            doc.add_text(f.ranked, RANKED_RATED);
        }
        doc.add_i64(f.created, d.created_at_ms);
        doc
    }

    /// Adds or replaces lessons (by id). Not visible until [`commit`](Self::commit).
    pub fn upsert(&self, docs: &[LessonDoc]) -> Result<(), SearchError> {
        let w = self.writer.lock().map_err(|_| SearchError::Poisoned)?;
        for d in docs {
            w.delete_term(Term::from_field_text(self.fields.id, &d.id));
            w.add_document(self.document(d))?;
        }
        Ok(())
    }

    /// Adds lessons known to be new (a rebuild): no delete per lesson.
    pub fn add_new(&self, docs: impl IntoIterator<Item = LessonDoc>) -> Result<(), SearchError> {
        let w = self.writer.lock().map_err(|_| SearchError::Poisoned)?;
        for d in docs {
            w.add_document(self.document(&d))?;
        }
        Ok(())
    }

    /// Removes a lesson. Not visible until [`commit`](Self::commit).
    pub fn delete(&self, id: &str) -> Result<(), SearchError> {
        let w = self.writer.lock().map_err(|_| SearchError::Poisoned)?;
        w.delete_term(Term::from_field_text(self.fields.id, id));
        Ok(())
    }

    /// Removes every lesson. Not visible until [`commit`](Self::commit).
    pub fn clear(&self) -> Result<(), SearchError> {
        let w = self.writer.lock().map_err(|_| SearchError::Poisoned)?;
        w.delete_all_documents()?;
        Ok(())
    }

    /// Makes pending changes durable and searchable, recording `seq` as covered.
    pub fn commit(&self, seq: u64) -> Result<(), SearchError> {
        {
            let mut w = self.writer.lock().map_err(|_| SearchError::Poisoned)?;
            let mut prepared = w.prepare_commit()?;
            prepared.set_payload(&seq.to_string());
            prepared.commit()?;
        }
        self.reader.reload()?;
        Ok(())
    }

    /// Number of lessons searchable now.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Segments searchable now (a rebuild leaves several until merges finish).
    pub fn segments(&self) -> usize {
        self.reader.searcher().segment_readers().len()
    }

    /// The clause matching one query word in any field: the word itself (weighted by field),
    /// all its bigrams (a part of a longer word), or, for letters, a pinyin or initials prefix.
    fn word_clause(&self, word: &str) -> Result<Box<dyn Query>, SearchError> {
        let f = self.fields;
        let mut alternatives: Vec<Box<dyn Query>> = Vec::new();
        for (field, boost) in f.words() {
            let q = TermQuery::new(Term::from_field_text(field, word), IndexRecordOption::WithFreqs);
            alternatives.push(Box::new(BoostQuery::new(Box::new(q), boost)));
        }
        let grams = analysis::bigrams(word);
        if word.chars().count() >= 2 && !grams.is_empty() {
            let all: Vec<(Occur, Box<dyn Query>)> = grams
                .iter()
                .map(|g| (Occur::Must, Box::new(TermQuery::new(Term::from_field_text(f.bigrams, g), IndexRecordOption::WithFreqs)) as Box<dyn Query>))
                .collect();
            alternatives.push(Box::new(BoostQuery::new(Box::new(BooleanQuery::new(all)), BIGRAM_BOOST)));
        }
        if analysis::is_pinyin_like(word) {
            let letters = regex_literal(word);
            let full: String = letters.chars().take(analysis::MAX_PINYIN_LETTERS).collect();
            let q = RegexQuery::from_pattern(&format!("{full}.*"), f.pinyin)?;
            alternatives.push(Box::new(BoostQuery::new(Box::new(q), PINYIN_BOOST)));
            if letters.len() <= analysis::MAX_INITIALS {
                let q = RegexQuery::from_pattern(&format!("{letters}.*"), f.initials)?;
                alternatives.push(Box::new(BoostQuery::new(Box::new(q), INITIALS_BOOST)));
            }
        }
        Ok(Box::new(DisjunctionMaxQuery::with_tie_breaker(alternatives, 0.1)))
    }

    /// The filter clauses: values of one dimension OR-ed, dimensions AND-ed.
    fn filter_clauses(&self, filters: &[(Dim, String)]) -> Vec<(Occur, Box<dyn Query>)> {
        let mut out: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for dim in Dim::ALL {
            let values: Vec<(Occur, Box<dyn Query>)> = filters
                .iter()
                .filter(|(d, _)| *d == dim)
                .map(|(_, v)| {
                    let q = TermQuery::new(Term::from_field_text(self.fields.dims[dim as usize], v.trim()), IndexRecordOption::Basic);
                    (Occur::Should, Box::new(q) as Box<dyn Query>)
                })
                .collect();
            if !values.is_empty() {
                out.push((Occur::Must, Box::new(BooleanQuery::new(values))));
            }
        }
        out
    }

    fn build_query(&self, query_text: &str, words: &[String], filters: &[(Dim, String)], ranking: Option<Order>, all_words: bool) -> Result<Box<dyn Query>, SearchError> {
        let mut clauses = self.filter_clauses(filters);
        // The rankings list only lessons someone watched (人气榜) or rated (好评榜).
        let ranked = match ranking {
            Some(Order::MostViewed) => Some(RANKED_VIEWED),
            Some(Order::BestRated) => Some(RANKED_RATED),
            _ => None,
        };
        if let Some(r) = ranked {
            clauses.push((Occur::Must, Box::new(TermQuery::new(Term::from_field_text(self.fields.ranked, r), IndexRecordOption::Basic))));
        }
        if words.is_empty() {
            if clauses.is_empty() {
                return Ok(Box::new(AllQuery));
            }
            clauses.push((Occur::Must, Box::new(AllQuery)));
            return Ok(Box::new(BooleanQuery::new(clauses)));
        }
        let mut each: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for w in words {
            each.push((if all_words { Occur::Must } else { Occur::Should }, self.word_clause(w)?));
        }
        let mut text: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Should, Box::new(BooleanQuery::new(each)))];
        // Or every bigram of the query in a title, chapter, knowledge point or name: jieba may cut
        // the query and the text differently (静夜思 as 静夜 + 思, 静夜思说课 as 静夜 + 思说 + 课).
        let grams = bigrams(query_text);
        if all_words && grams.len() > 1 {
            let all: Vec<(Occur, Box<dyn Query>)> = grams
                .iter()
                .map(|g| (Occur::Must, Box::new(TermQuery::new(Term::from_field_text(self.fields.bigrams, g), IndexRecordOption::WithFreqs)) as Box<dyn Query>))
                .collect();
            text.push((Occur::Should, Box::new(BoostQuery::new(Box::new(BooleanQuery::new(all)), BIGRAM_BOOST))));
        }
        clauses.push((Occur::Must, Box::new(BooleanQuery::new(text))));
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    /// Runs a search. Every word of the text must match (in some field, as a word, a part of
    /// one, or pinyin); when that finds nothing, lessons matching any word are returned.
    pub fn search(&self, req: &Request) -> Result<Results, SearchError> {
        if req.offset.saturating_add(req.limit) > MAX_DEPTH {
            return Err(SearchError::TooDeep);
        }
        let searcher = self.reader.searcher();
        let generation = searcher.generation().generation_id();
        if let Some(r) = self.cache.lock().ok().and_then(|mut c| c.get(generation, req)) {
            return Ok(r);
        }
        let results = self.search_on(&searcher, req)?;
        if let Ok(mut c) = self.cache.lock() {
            c.put(generation, req.clone(), results.clone());
        }
        Ok(results)
    }

    fn search_on(&self, searcher: &Searcher, req: &Request) -> Result<Results, SearchError> {
        let words = terms(&req.text);
        let order = if words.is_empty() && req.order == Order::Relevance { Order::Newest } else { req.order };
        let ranking = req.ranked.then_some(order);
        let query = self.build_query(&req.text, &words, &req.filters, ranking, true)?;
        let mut found = self.collect(searcher, &*query, order, req)?;
        if found.0 == 0 && words.len() > 1 {
            let relaxed = self.build_query(&req.text, &words, &req.filters, ranking, false)?;
            found = self.collect(searcher, &*relaxed, order, req)?;
        }
        let (total, docs, facets) = found;
        let docs = if req.limit == 0 { Vec::new() } else { docs };

        // What to mark: the query's words and, for words jieba may have cut differently in the
        // text, the whole query runs.
        let mut needles: Vec<String> = words.clone();
        needles.extend(req.text.split(analysis::is_break_char).filter(|r| r.chars().count() >= 2).map(str::to_lowercase));
        let mut hits = Vec::with_capacity(docs.len());
        for (score, addr) in docs {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let Some(id) = doc.get_first(self.fields.id).and_then(|v| v.as_str()) else { continue };
            let text = |field: Field| doc.get_first(field).and_then(|v| v.as_str()).unwrap_or("");
            let cues: Vec<(u64, String)> = doc.get_first(self.fields.cues).and_then(|v| v.as_str()).and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
            hits.push(Hit {
                id: id.to_string(),
                score,
                title_marks: highlight::mark(text(self.fields.title), &needles, usize::MAX),
                snippet_marks: highlight::mark(text(self.fields.description), &needles, SNIPPET_CHARS),
                moments: moments(&cues, &words),
            });
        }
        Ok(Results { total, hits, facets })
    }

    /// One pass over the matching lessons: how many, the page in `order`, the facet counts.
    fn collect(&self, searcher: &Searcher, query: &dyn Query, order: Order, req: &Request) -> Result<Collected, SearchError> {
        let top = TopDocs::with_limit(req.limit.max(1)).and_offset(req.offset);
        let counter = req.facets.then_some(facets::FacetCounter);
        let (total, docs, counts): (usize, Vec<(Score, DocAddress)>, Option<FacetCounts>) = match order {
            Order::Relevance => {
                let top = top.tweak_score(move |segment: &SegmentReader| {
                    let views = segment.fast_fields().u64("views").ok().map(|c| c.first_or_default_col(0));
                    let rating = segment.fast_fields().f64("rating").ok().map(|c| c.first_or_default_col(3.0));
                    move |doc: DocId, score: Score| {
                        let v = views.as_ref().map_or(0, |c| c.get_val(doc));
                        let r = rating.as_ref().map_or(3.0, |c| c.get_val(doc));
                        blend(score, v, r)
                    }
                });
                searcher.search(query, &(Count, top, counter))?
            }
            Order::MostViewed => {
                let (n, hits, c): (usize, Vec<(Option<u64>, DocAddress)>, _) = searcher.search(query, &(Count, top.order_by_fast_field("views", SortOrder::Desc), counter))?;
                (n, hits.into_iter().map(|(v, a)| (v.unwrap_or(0) as Score, a)).collect(), c)
            }
            Order::BestRated => {
                let (n, hits, c): (usize, Vec<(Option<f64>, DocAddress)>, _) = searcher.search(query, &(Count, top.order_by_fast_field("rating", SortOrder::Desc), counter))?;
                (n, hits.into_iter().map(|(v, a)| (v.unwrap_or(0.0) as Score, a)).collect(), c)
            }
            Order::Newest => {
                let (n, hits, c): (usize, Vec<(Option<i64>, DocAddress)>, _) = searcher.search(query, &(Count, top.order_by_fast_field("created", SortOrder::Desc), counter))?;
                (n, hits.into_iter().map(|(_, a)| (0.0, a)).collect(), c)
            }
        };
        Ok((total, docs, counts.unwrap_or_default()))
    }

    /// Waits for background merges to finish (after a rebuild), leaving fewer segments to search.
    pub fn wait_merges(&self) -> Result<(), SearchError> {
        let w = self.writer.lock().map_err(|_| SearchError::Poisoned)?;
        let ids = self.index.searchable_segment_ids()?;
        if ids.len() > 1 {
            let mut w = w;
            let merge = w.merge(&ids);
            drop(w);
            merge.wait()?;
        }
        self.reader.reload()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
