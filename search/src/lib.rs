//! Youke search: a tantivy full-text index of lessons, segmented for Chinese with jieba.
//!
//! The index is derived data: the node rebuilds it from SQLite whenever it is missing or
//! corrupt. Each commit carries the node's document change sequence number it covers as its
//! payload, so after a restart the node indexes only what changed since.

use std::path::Path;
use std::sync::Mutex;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value};
use tantivy::tokenizer::{LowerCaser, RemoveLongFilter, StopWordFilter, TextAnalyzer, TokenStream};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// Name under which the Chinese analyzer is registered.
const ANALYZER: &str = "zh_jieba";
/// Name of the character-bigram analyzer: it finds parts of words jieba keeps whole
/// (勾股 in 勾股定理).
const BIGRAMS: &str = "zh_bigram";
/// Weight of a bigram match relative to a whole-word match in the title.
const BIGRAM_BOOST: f32 = 0.5;
/// Memory the index writer may use before it flushes a segment.
const WRITER_MEMORY: usize = 50 * 1024 * 1024;

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
}

/// The searchable fields of a lesson.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LessonDoc {
    pub id: String,
    pub title: String,
    pub teacher: String,
    pub subject: String,
    pub grade: String,
    pub knowledge_points: Vec<String>,
    /// Subtitle cues: start in milliseconds, text.
    pub cues: Vec<(u64, String)>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub score: f32,
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

/// Moments listed per hit.
pub const MAX_MOMENTS: usize = 3;

#[derive(Debug, Clone, Copy)]
struct Fields {
    id: Field,
    title: Field,
    teacher: Field,
    subject: Field,
    grade: Field,
    knowledge: Field,
    bigrams: Field,
    subtitles: Field,
    /// The cues as JSON (start, text), stored to find the moments of a hit.
    cues: Field,
}

impl Fields {
    fn text(&self) -> [(Field, f32); 6] {
        [(self.title, 3.0), (self.knowledge, 2.0), (self.teacher, 1.5), (self.subject, 1.0), (self.grade, 1.0), (self.subtitles, 0.6)]
    }
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default().set_tokenizer(ANALYZER).set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        title: b.add_text_field("title", text.clone()),
        teacher: b.add_text_field("teacher", text.clone()),
        subject: b.add_text_field("subject", text.clone()),
        grade: b.add_text_field("grade", text.clone()),
        knowledge: b.add_text_field("knowledge_points", text.clone()),
        subtitles: b.add_text_field(
            "subtitles",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default().set_tokenizer(ANALYZER).set_index_option(IndexRecordOption::WithFreqsAndPositions),
            ),
        ),
        cues: b.add_text_field("cues", STORED),
        bigrams: b.add_text_field(
            "bigrams",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default().set_tokenizer(BIGRAMS).set_index_option(IndexRecordOption::WithFreqs),
            ),
        ),
    };
    (b.build(), fields)
}

/// The Chinese analyzer: jieba in search mode (overlapping words, so 一元二次方程 also yields
/// 一元, 二次 and 方程), lower-cased, with jieba's whitespace and punctuation tokens dropped.
pub fn analyzer() -> TextAnalyzer {
    let drop: Vec<String> = [" ", "\t", "\n", "，", "。", "、", "：", "；", "！", "？", "（", "）", "《", "》", ",", ".", ":", ";", "!", "?", "(", ")", "-", "_", "/", "\"", "“", "”", "·"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    TextAnalyzer::builder(tantivy_jieba::JiebaTokenizer::new())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(StopWordFilter::remove(drop))
        .build()
}

/// Overlapping two-character grams, lower-cased.
pub fn bigram_analyzer() -> TextAnalyzer {
    match tantivy::tokenizer::NgramTokenizer::new(2, 2, false) {
        Ok(t) => TextAnalyzer::builder(t).filter(LowerCaser).build(),
        Err(_) => TextAnalyzer::from(tantivy::tokenizer::SimpleTokenizer::default()),
    }
}

fn bigrams(text: &str) -> Vec<String> {
    let mut a = bigram_analyzer();
    let mut out: Vec<String> = Vec::new();
    // Grams never span whitespace or punctuation.
    for part in text.split(|c: char| c.is_whitespace() || (c.is_ascii_punctuation()) || "，。、：；！？（）《》“”·".contains(c)) {
        let mut stream = a.token_stream(part);
        while stream.advance() {
            let t = stream.token().text.clone();
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// Splits text into the index's terms (deduplicated, in first-seen order).
pub fn terms(text: &str) -> Vec<String> {
    let mut a = analyzer();
    let mut stream = a.token_stream(text);
    let mut out: Vec<String> = Vec::new();
    while stream.advance() {
        let t = stream.token().text.trim();
        if !t.is_empty() && !out.iter().any(|o| o == t) {
            out.push(t.to_string());
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

/// The lesson index.
pub struct LessonIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
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
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = schema();
        let has_meta = dir.join("meta.json").exists();
        let index = if has_meta {
            let index = Index::open_in_dir(dir).map_err(|e| SearchError::Corrupt { path: dir.display().to_string(), reason: e.to_string() })?;
            if index.schema() != schema {
                return Err(SearchError::Corrupt { path: dir.display().to_string(), reason: "schema changed".into() });
            }
            index
        } else {
            Index::create_in_dir(dir, schema)?
        };
        Self::with_index(index, fields).map_err(|e| SearchError::Corrupt { path: dir.display().to_string(), reason: e.to_string() })
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
        Self::with_index(Index::create_in_ram(schema), fields)
    }

    fn with_index(index: Index, fields: Fields) -> Result<Self, SearchError> {
        index.tokenizers().register(ANALYZER, analyzer());
        index.tokenizers().register(BIGRAMS, bigram_analyzer());
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(LessonIndex { index, reader, writer: Mutex::new(writer), fields })
    }

    /// The change sequence number the last commit covers (0 for a new index).
    pub fn indexed_seq(&self) -> u64 {
        self.index
            .load_metas()
            .ok()
            .and_then(|m| m.payload)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Adds or replaces lessons (by id). Not visible until [`commit`](Self::commit).
    pub fn upsert(&self, docs: &[LessonDoc]) -> Result<(), SearchError> {
        let w = self.writer.lock().map_err(|_| SearchError::Poisoned)?;
        let f = self.fields;
        for d in docs {
            w.delete_term(Term::from_field_text(f.id, &d.id));
            let mut doc = TantivyDocument::default();
            doc.add_text(f.id, &d.id);
            doc.add_text(f.title, &d.title);
            doc.add_text(f.teacher, &d.teacher);
            doc.add_text(f.subject, &d.subject);
            doc.add_text(f.grade, &d.grade);
            for k in &d.knowledge_points {
                doc.add_text(f.knowledge, k);
            }
            for part in std::iter::once(&d.title).chain(d.knowledge_points.iter()).chain(std::iter::once(&d.teacher)) {
                doc.add_text(f.bigrams, part);
            }
            if !d.cues.is_empty() {
                for (_, t) in &d.cues {
                    doc.add_text(f.subtitles, t);
                }
                let json: Vec<(u64, &str)> = d.cues.iter().map(|(s, t)| (*s, t.as_str())).collect();
                doc.add_text(f.cues, serde_json::to_string(&json).unwrap_or_default());
            }
            w.add_document(doc)?;
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

    /// Lessons matching any term of `query`, best first. Title matches weigh most, then
    /// knowledge points, teacher, subject and grade.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Hit>, SearchError> {
        let words = terms(query);
        let grams = bigrams(query);
        if (words.is_empty() && grams.is_empty()) || limit == 0 {
            return Ok(Vec::new());
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for w in &words {
            for (field, boost) in self.fields.text() {
                let q = TermQuery::new(Term::from_field_text(field, w), IndexRecordOption::WithFreqs);
                clauses.push((Occur::Should, Box::new(tantivy::query::BoostQuery::new(Box::new(q), boost))));
            }
        }
        for g in &grams {
            let q = TermQuery::new(Term::from_field_text(self.fields.bigrams, g), IndexRecordOption::WithFreqs);
            clauses.push((Occur::Should, Box::new(tantivy::query::BoostQuery::new(Box::new(q), BIGRAM_BOOST))));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            if let Some(id) = doc.get_first(self.fields.id).and_then(|v| v.as_str()) {
                let cues: Vec<(u64, String)> = doc.get_first(self.fields.cues).and_then(|v| v.as_str()).and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
                hits.push(Hit { id: id.to_string(), score, moments: moments(&cues, &words) });
            }
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lesson(id: &str, title: &str, teacher: &str, subject: &str, grade: &str, kp: &[&str]) -> LessonDoc {
        LessonDoc {
            id: id.into(),
            title: title.into(),
            teacher: teacher.into(),
            subject: subject.into(),
            grade: grade.into(),
            knowledge_points: kp.iter().map(|s| s.to_string()).collect(),
            cues: Vec::new(),
        }
    }

    #[test]
    fn spoken_words_find_the_lesson_and_the_moment() {
        let idx = LessonIndex::in_memory().expect("index");
        let mut d = lesson("s", "第三章 复习", "王老师", "数学", "初二", &[]);
        d.cues = vec![(1_000, "同学们好".into()), (65_500, "今天我们来证明勾股定理".into()), (130_000, "下课".into())];
        idx.upsert(&[d, lesson("t", "勾股定理", "李老师", "数学", "初二", &[])]).expect("upsert");
        idx.commit(1).expect("commit");
        let hits = idx.search("证明", 10).expect("search");
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].id, "s");
        assert_eq!(hits[0].moments, vec![Moment { start_ms: 65_500, text: "今天我们来证明勾股定理".into() }]);
        let hits = idx.search("勾股定理", 10).expect("search");
        assert_eq!(hits[0].id, "t", "a title match outweighs a spoken one");
        assert_eq!(hits.iter().find(|h| h.id == "s").map(|h| h.moments.len()), Some(1));
    }

    fn sample() -> LessonIndex {
        let idx = LessonIndex::in_memory().expect("index");
        idx.upsert(&[
            lesson("a", "一元二次方程的解法", "王老师", "数学", "初三", &["配方法", "求根公式"]),
            lesson("b", "牛顿第一定律", "李明", "物理", "初二", &["惯性"]),
            lesson("c", "静夜思 古诗朗读", "张华", "语文", "一年级", &["李白"]),
        ])
        .expect("upsert");
        idx.commit(3).expect("commit");
        idx
    }

    #[test]
    fn analyzer_segments_chinese_and_drops_spaces() {
        let t = terms("一元二次方程 的解法");
        assert!(t.contains(&"方程".to_string()), "{t:?}");
        assert!(t.contains(&"一元二次方程".to_string()), "{t:?}");
        assert!(!t.iter().any(|s| s.trim().is_empty()));
    }

    #[test]
    fn finds_lessons_by_chinese_words_in_any_field() {
        let idx = sample();
        assert_eq!(idx.search("方程", 10).expect("search")[0].id, "a");
        assert_eq!(idx.search("牛顿", 10).expect("search")[0].id, "b");
        assert_eq!(idx.search("惯性", 10).expect("search")[0].id, "b");
        assert_eq!(idx.search("李白", 10).expect("search")[0].id, "c");
        assert_eq!(idx.search("王老师", 10).expect("search")[0].id, "a");
        // Parts of words jieba keeps whole are found through bigrams.
        assert_eq!(idx.search("二次", 10).expect("search")[0].id, "a");
        assert_eq!(idx.search("夜思", 10).expect("search")[0].id, "c");
        assert!(idx.search("化学", 10).expect("search").is_empty());
        assert!(idx.search("  ，。", 10).expect("search").is_empty());
    }

    #[test]
    fn upsert_replaces_and_commit_records_sequence() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let idx = LessonIndex::open(dir.path()).expect("open");
            idx.upsert(&[lesson("a", "旧标题", "", "", "", &[])]).expect("upsert");
            idx.commit(5).expect("commit");
            idx.upsert(&[lesson("a", "光的折射", "", "物理", "", &[])]).expect("upsert");
            idx.commit(9).expect("commit");
            assert_eq!(idx.len(), 1);
        }
        let idx = LessonIndex::open(dir.path()).expect("reopen");
        assert_eq!(idx.indexed_seq(), 9);
        assert!(idx.search("旧标题", 10).expect("search").is_empty());
        assert_eq!(idx.search("折射", 10).expect("search")[0].id, "a");
    }

    #[test]
    fn corrupt_index_is_detected_and_recreated() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("meta.json"), b"{not json").expect("write");
        assert!(matches!(LessonIndex::open(dir.path()), Err(SearchError::Corrupt { .. })));
        let (idx, recreated) = LessonIndex::open_or_recreate(dir.path()).expect("recreate");
        assert!(recreated);
        assert!(idx.is_empty());
    }
}
