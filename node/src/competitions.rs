//! The competition workflow (优质课评选), on top of the competition documents of
//! [`crate::catalog`]:
//!
//! 1. A city or province admin publishes a competition (rules, deadline, whether the course
//!    video standard is required, the scoring rubric); it goes down the whole tree.
//! 2. A school enters one of its own lessons ([`submit`]): refused after the deadline, and refused
//!    with the failing rules when the standard is required and the lesson's report fails it.
//!    The entry is written into the lesson's document, whose share level is raised to the
//!    competition's tier in the same change, so the lesson and its recording travel up (entries
//!    first in the upload queue).
//! 3. At the node that runs the competition, its admin assigns each entry to experts
//!    ([`assign`]); each expert sees and scores only their assignments against the rubric
//!    ([`score`]). Assignments and scores are this node's own rows (its accounts), never synced.
//! 4. The admin publishes the results ([`publish_results`]): the awards go into the competition's
//!    document and the winners into a new published, featured collection, both flowing down the
//!    tree, in one transaction.
//!
//! Everything a school, city or province does here is checked again where it lands: an entry
//! counts at the organizer only if its document says it was made before the deadline.

use crate::catalog::{self, Collection, Competition};
use crate::documents::{DocError, Writer, child};
use crate::competition_entries;
use crate::lessons::{self, Lesson};
use crate::store::now_ms;
use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT};
use rusqlite::{Connection, Transaction, params};
use serde::Serialize;
use std::collections::BTreeMap;
use youke_federation::Tier;

#[derive(Debug, thiserror::Error)]
pub enum CompetitionError {
    #[error("no competition with id {0} at this node")]
    NoSuchCompetition(String),
    #[error("no lesson with id {0} at this node")]
    NoSuchLesson(String),
    #[error("this competition opens for entries on {0} (China time)")]
    NotOpen(String),
    #[error("the deadline for entries was {0} (China time); this competition takes no more entries")]
    Closed(String),
    #[error("the results of this competition are published; it takes no more entries or scores")]
    Decided,
    #[error("{0}")]
    NotHere(String),
    #[error("this competition requires the course video standard and the lesson fails it: {}", list_rules(.0))]
    NotCompliant(Vec<FailedRule>),
    #[error("this competition requires the course video standard and the lesson has not been checked against it yet; wait for its media job or run youke check")]
    NotChecked,
    #[error("{0} is not assigned this entry; only its assigned experts score it")]
    NotAssigned(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<rusqlite::Error> for CompetitionError {
    fn from(e: rusqlite::Error) -> Self {
        CompetitionError::Doc(DocError::from(e))
    }
}

/// A rule of the course video standard a lesson fails.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedRule {
    pub id: String,
    pub item: String,
    pub rule: String,
    pub measured: String,
}

fn list_rules(rules: &[FailedRule]) -> String {
    rules.iter().map(|r| format!("{} {} is {} (the standard: {})", r.id, r.item, r.measured, r.rule)).collect::<Vec<_>>().join("; ")
}

/// The rules a lesson's compliance report fails; `None` when it has no report yet.
pub fn failing_rules(lesson: &Lesson) -> Option<Vec<FailedRule>> {
    let report: youke_media::standard::Report = serde_json::from_str(lesson.compliance.as_ref()?.as_str()).ok()?;
    Some(
        report
            .rules
            .into_iter()
            .filter(|r| r.verdict == youke_media::standard::Verdict::Fail)
            .map(|r| FailedRule { id: r.id, item: r.item, rule: r.rule, measured: r.measured })
            .collect(),
    )
}

/// Where a competition stands at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Not yet taking entries.
    Upcoming,
    /// Taking entries.
    Open,
    /// Past its deadline, results not published: the experts are scoring.
    Judging,
    /// Results published.
    Awarded,
}

pub fn stage(c: &Competition, now: i64) -> Stage {
    if c.awarded_at > 0 {
        Stage::Awarded
    } else if c.opens_at > now {
        Stage::Upcoming
    } else if c.closes_at > 0 && now > c.closes_at {
        Stage::Judging
    } else {
        Stage::Open
    }
}

fn get(conn: &Connection, id: &str) -> Result<Competition, CompetitionError> {
    catalog::competition(conn, id)?.ok_or_else(|| CompetitionError::NoSuchCompetition(id.to_string()))
}

/// Decisions (assignments, scores, results) are made only at the node that runs a competition.
fn run_here(c: &Competition, w: &Writer) -> Result<(), CompetitionError> {
    if c.origin_node == w.node_id {
        Ok(())
    } else {
        Err(CompetitionError::NotHere(format!("this competition is run by {}; its entries are judged there", c.origin_name)))
    }
}

/// Enters a lesson of this school in a competition. Entering again changes nothing.
pub fn submit(tx: &Transaction<'_>, w: &Writer, competition: &str, lesson: &str, now: i64) -> Result<Entry, CompetitionError> {
    let c = get(tx, competition)?;
    let l = lessons::get(tx, lesson)?.ok_or_else(|| CompetitionError::NoSuchLesson(lesson.to_string()))?;
    if l.origin_node != w.node_id {
        return Err(CompetitionError::NotHere(format!("this lesson comes from {}; its school enters it", l.origin_name)));
    }
    if let Some(e) = entry(tx, competition, lesson)? {
        return Ok(e);
    }
    match stage(&c, now) {
        Stage::Upcoming => return Err(CompetitionError::NotOpen(crate::store::china_time(c.opens_at))),
        Stage::Judging => return Err(CompetitionError::Closed(crate::store::china_time(c.closes_at))),
        Stage::Awarded => return Err(CompetitionError::Decided),
        Stage::Open => {}
    }
    if c.requires_standard {
        match failing_rules(&l) {
            None => return Err(CompetitionError::NotChecked),
            Some(failed) if !failed.is_empty() => return Err(CompetitionError::NotCompliant(failed)),
            Some(_) => {}
        }
    }
    let mut doc = lessons::load_document(tx, w, lesson)?.ok_or_else(|| CompetitionError::NoSuchLesson(lesson.to_string()))?;
    let entries = match child(&doc, &ROOT, "competitions") {
        Some(m) => m,
        None => doc.put_object(ROOT, "competitions", ObjType::Map).map_err(DocError::from)?,
    };
    let e = doc.put_object(&entries, competition, ObjType::Map).map_err(DocError::from)?;
    doc.put(&e, "at", now).map_err(DocError::from)?;
    doc.put(&e, "by", w.node_name.as_str()).map_err(DocError::from)?;
    // The entry travels to the organizer with the lesson: shared at least as far as its tier.
    let organizer = c.origin_tier.parse::<Tier>().unwrap_or(Tier::Province);
    if l.share_level < organizer {
        doc.put(ROOT, "share_level", organizer.as_str()).map_err(DocError::from)?;
    }
    lessons::save(tx, w, &mut doc)?;
    entry(tx, competition, lesson)?.ok_or_else(|| CompetitionError::NoSuchLesson(lesson.to_string()))
}

/// One lesson entered in a competition, as this node knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub competition_id: String,
    pub lesson: Lesson,
    pub submitted_at: i64,
    /// The school that entered it.
    pub submitted_by: String,
    /// Entered after the deadline (a school with a wrong clock): not judged.
    pub late: bool,
    /// The award, once the results are published.
    pub award: Option<String>,
    /// The experts judging it and their scores (at the organizer; visible to its admins).
    pub judges: Vec<Judgement>,
    /// The mean of the scores given so far.
    pub average: Option<f64>,
}

/// An expert's assignment to an entry and, once given, the score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    pub expert: String,
    pub assigned_at: i64,
    /// Points per rubric line.
    pub scores: Option<BTreeMap<String, i64>>,
    pub total: Option<i64>,
    pub comment: String,
    pub scored_at: Option<i64>,
}

fn judgements(conn: &Connection, competition: &str, lesson: &str, only: Option<&str>) -> Result<Vec<Judgement>, CompetitionError> {
    let mut st = conn.prepare_cached(
        "SELECT expert, assigned_at, scores, total, comment, scored_at FROM competition_judges
         WHERE competition_id = ?1 AND lesson_id = ?2 AND (?3 IS NULL OR expert = ?3) ORDER BY expert",
    )?;
    let rows = st.query_map(params![competition, lesson, only], |r| {
        Ok(Judgement {
            expert: r.get(0)?,
            assigned_at: r.get(1)?,
            scores: r.get::<_, Option<String>>(2)?.and_then(|s| serde_json::from_str(&s).ok()),
            total: r.get(3)?,
            comment: r.get(4)?,
            scored_at: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn build_entry(conn: &Connection, c: &Competition, lesson: Lesson, submitted_at: i64, submitted_by: String, only: Option<&str>) -> Result<Entry, CompetitionError> {
    let judges = judgements(conn, &c.id, &lesson.id, only)?;
    let totals: Vec<i64> = judges.iter().filter_map(|j| j.total).collect();
    Ok(Entry {
        competition_id: c.id.clone(),
        award: c.awards.get(&lesson.id).cloned(),
        late: c.closes_at > 0 && submitted_at > c.closes_at,
        average: (!totals.is_empty()).then(|| totals.iter().sum::<i64>() as f64 / totals.len() as f64),
        lesson,
        submitted_at,
        submitted_by,
        judges,
    })
}

fn entry(conn: &Connection, competition: &str, lesson: &str) -> Result<Option<Entry>, CompetitionError> {
    entry_in(conn, &get(conn, competition)?, lesson, None)
}

/// A lesson's entry in `c`, with the judgements of `only` that expert (all when `None`).
fn entry_in(conn: &Connection, c: &Competition, lesson: &str, only: Option<&str>) -> Result<Option<Entry>, CompetitionError> {
    let Some((at, by)) = competition_entries::entry(conn, &c.id, lesson)? else { return Ok(None) };
    let Some(l) = lessons::get(conn, lesson)? else { return Ok(None) };
    Ok(Some(build_entry(conn, c, l, at, by, only)?))
}

/// Who is looking at a competition's entries, which decides what they see.
#[derive(Debug, Clone, Copy)]
pub enum Viewer<'a> {
    /// An admin here: every entry with every judgement.
    Admin,
    /// An expert here: only the entries assigned to them, with their own scores.
    Expert(&'a str),
    /// Anyone else: the entries with their awards once published, no judgements.
    Public,
}

/// A competition's entries as `viewer` may see them, in the order they came in.
pub fn entries(conn: &Connection, competition: &str, viewer: Viewer<'_>) -> Result<Vec<Entry>, CompetitionError> {
    let c = get(conn, competition)?;
    let expert = match viewer {
        Viewer::Expert(e) => Some(e),
        _ => None,
    };
    let mut out = Vec::new();
    for (id, at, by) in competition_entries::of_competition(conn, competition)? {
        // An expert sees only the entries assigned to them.
        if let Some(e) = expert
            && !is_assigned(conn, competition, &id, e)?
        {
            continue;
        }
        let Some(l) = lessons::get(conn, &id)? else { continue };
        let mut e = build_entry(conn, &c, l, at, by, expert)?;
        if matches!(viewer, Viewer::Public) {
            e.judges.clear();
            e.average = None;
        }
        out.push(e);
    }
    Ok(out)
}

/// The competitions a lesson is entered in, with its award in each (for the lesson page).
pub fn of_lesson(conn: &Connection, lesson: &str) -> Result<Vec<(Competition, Option<String>)>, CompetitionError> {
    let mut out = Vec::new();
    for id in competition_entries::of_lesson(conn, lesson)? {
        if let Some(c) = catalog::competition(conn, &id)? {
            let award = c.awards.get(lesson).cloned();
            out.push((c, award));
        }
    }
    Ok(out)
}

/// Sets the experts who judge an entry: these accounts (experts here) are assigned, others are
/// unassigned unless they already scored it.
pub fn assign(tx: &Transaction<'_>, w: &Writer, competition: &str, lesson: &str, experts: &[String]) -> Result<Entry, CompetitionError> {
    let c = get(tx, competition)?;
    run_here(&c, w)?;
    if c.awarded_at > 0 {
        return Err(CompetitionError::Decided);
    }
    let e = entry(tx, competition, lesson)?.ok_or_else(|| CompetitionError::Invalid(format!("lesson {lesson} is not entered in this competition")))?;
    if e.late {
        return Err(CompetitionError::Invalid("this entry came in after the deadline and is not judged".into()));
    }
    if experts.len() > 20 {
        return Err(CompetitionError::Invalid("at most 20 experts judge one entry".into()));
    }
    for name in experts {
        match crate::accounts::get_user(tx, name).map_err(|e| CompetitionError::Invalid(e.to_string()))? {
            Some(u) if u.role == crate::accounts::Role::Expert && !u.disabled => {}
            Some(_) => return Err(CompetitionError::Invalid(format!("{name} is not an expert account; give it the expert role first (youke user set {name} --role expert)"))),
            None => return Err(CompetitionError::Invalid(format!("there is no account named {name} at this node"))),
        }
        tx.execute(
            "INSERT INTO competition_judges (competition_id, lesson_id, expert, assigned_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            params![competition, lesson, name, now_ms()],
        )?;
    }
    tx.execute(
        "DELETE FROM competition_judges WHERE competition_id = ?1 AND lesson_id = ?2 AND scored_at IS NULL
           AND expert NOT IN (SELECT value FROM json_each(?3))",
        params![competition, lesson, serde_json::to_string(experts).unwrap_or_default()],
    )?;
    entry(tx, competition, lesson)?.ok_or_else(|| CompetitionError::NoSuchLesson(lesson.to_string()))
}

/// Whether `expert` is assigned to judge `lesson` in `competition`.
fn is_assigned(conn: &Connection, competition: &str, lesson: &str, expert: &str) -> Result<bool, CompetitionError> {
    let mut stmt = conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM competition_judges WHERE competition_id = ?1 AND lesson_id = ?2 AND expert = ?3)")?;
    Ok(stmt.query_row(params![competition, lesson, expert], |r| r.get(0))?)
}

/// An assigned expert scores an entry against the rubric (every line, 0 to its maximum);
/// scoring again replaces the earlier score.
pub fn score(tx: &Transaction<'_>, w: &Writer, competition: &str, lesson: &str, expert: &str, scores: &BTreeMap<String, i64>, comment: &str) -> Result<Judgement, CompetitionError> {
    let c = get(tx, competition)?;
    run_here(&c, w)?;
    if c.awarded_at > 0 {
        return Err(CompetitionError::Decided);
    }
    if !is_assigned(tx, competition, lesson, expert)? {
        return Err(CompetitionError::NotAssigned(expert.to_string()));
    }
    for k in &c.rubric {
        match scores.get(&k.name) {
            Some(p) if (0..=k.max).contains(p) => {}
            Some(p) => return Err(CompetitionError::Invalid(format!("{}: {p} points is outside 0 to {}", k.name, k.max))),
            None => return Err(CompetitionError::Invalid(format!("{} has no score; every rubric line is scored", k.name))),
        }
    }
    if let Some(extra) = scores.keys().find(|n| !c.rubric.iter().any(|k| &k.name == *n)) {
        return Err(CompetitionError::Invalid(format!("{extra} is not a line of this competition's rubric")));
    }
    if comment.chars().count() > crate::documents::MAX_TEXT {
        return Err(CompetitionError::Invalid(format!("a comment has at most {} characters", crate::documents::MAX_TEXT)));
    }
    let total: i64 = scores.values().sum();
    tx.execute(
        "UPDATE competition_judges SET scores = ?4, total = ?5, comment = ?6, scored_at = ?7 WHERE competition_id = ?1 AND lesson_id = ?2 AND expert = ?3",
        params![competition, lesson, expert, serde_json::to_string(scores).unwrap_or_default(), total, comment.trim(), now_ms()],
    )?;
    judgements(tx, competition, lesson, Some(expert))?.pop().ok_or_else(|| CompetitionError::NotAssigned(expert.to_string()))
}

/// Publishes a competition's results: each awarded lesson must be an entry judged on time. The
/// awards go into the competition's document and the winners, in the order given, into a new
/// published and featured collection (获奖课例), both going down the tree.
pub fn publish_results(tx: &Transaction<'_>, w: &Writer, competition: &str, awards: &[(String, String)]) -> Result<Competition, CompetitionError> {
    let c = get(tx, competition)?;
    run_here(&c, w)?;
    if c.awarded_at > 0 {
        return Err(CompetitionError::Decided);
    }
    if awards.is_empty() {
        return Err(CompetitionError::Invalid("name at least one award, e.g. 一等奖 for the best entry".into()));
    }
    for (i, (lesson, award)) in awards.iter().enumerate() {
        let e = entry(tx, competition, lesson)?.ok_or_else(|| CompetitionError::Invalid(format!("lesson {lesson} is not entered in this competition")))?;
        if e.late {
            return Err(CompetitionError::Invalid(format!("{} came in after the deadline and cannot be awarded", e.lesson.title)));
        }
        if award.trim().is_empty() || award.chars().count() > 50 {
            return Err(CompetitionError::Invalid(format!("{}: an award name of 1 to 50 characters, e.g. 一等奖", e.lesson.title)));
        }
        if awards[..i].iter().any(|(l, _)| l == lesson) {
            return Err(CompetitionError::Invalid(format!("{} is awarded twice", e.lesson.title)));
        }
    }
    let archive = catalog::create_collection(
        tx,
        w,
        &Collection {
            id: String::new(),
            title: format!("{} · 获奖课例", c.title),
            description: awards.iter().filter_map(|(l, a)| Some(format!("{a}：{}", lessons::get(tx, l).ok()??.title))).collect::<Vec<_>>().join("；"),
            lessons: awards.iter().map(|(l, _)| l.clone()).collect(),
            featured: true,
            pinned: false,
            published: true,
            origin_name: String::new(),
        },
    )?;
    let done = catalog::put_results(tx, w, competition, awards, &archive.id)?.ok_or_else(|| CompetitionError::NoSuchCompetition(competition.to_string()))?;
    Ok(done)
}

/// An expert's assignments here: (competition, entry) pairs with the expert's own judgement.
pub fn assignments(conn: &Connection, expert: &str) -> Result<Vec<(Competition, Entry)>, CompetitionError> {
    let pairs: Vec<(String, String)> = {
        let mut st = conn.prepare_cached("SELECT competition_id, lesson_id FROM competition_judges WHERE expert = ?1 ORDER BY assigned_at")?;
        st.query_map([expert], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?
    };
    let mut out = Vec::new();
    for (cid, lid) in pairs {
        let Some(c) = catalog::competition(conn, &cid)? else { continue };
        if let Some(e) = entry_in(conn, &c, &lid, Some(expert))? {
            out.push((c, e));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::{self, Source};
    use crate::store::Store;

    struct Tree {
        _dir: tempfile::TempDir,
        province: Store,
        wp: Writer,
        school: Store,
        ws: Writer,
    }

    fn tree() -> Tree {
        let dir = tempfile::tempdir().expect("tempdir");
        let province = Store::open(&dir.path().join("p")).expect("open");
        let school = Store::open(&dir.path().join("s")).expect("open");
        let wp = Writer { node_id: uuid::Uuid::new_v4().to_string(), node_name: "省中心".into(), tier: Tier::Province, has_parent: false };
        let ws = Writer { node_id: uuid::Uuid::new_v4().to_string(), node_name: "第一中学".into(), tier: Tier::School, has_parent: true };
        for (name, role) in [("zhuanjia1", crate::accounts::Role::Expert), ("zhuanjia2", crate::accounts::Role::Expert), ("laoshi", crate::accounts::Role::Teacher)] {
            province.write(|tx| crate::accounts::create_user(tx, name, name, role, "long enough password")).expect("user");
        }
        Tree { _dir: dir, province, wp, school, ws }
    }

    /// Ships every document of `from` changed after `after` to `to` (as the links would).
    fn ship(from: &Store, to: &Store, w_to: &Writer, source: Source<'_>, after: u64) -> u64 {
        let docs: Vec<(youke_federation::protocol::DocUpdate, u64)> = from
            .read(|c| {
                let mut s = c.prepare("SELECT id, kind, seq, bytes, heads FROM docs WHERE seq > ?1 ORDER BY seq")?;
                let rows = s.query_map([after as i64], |r| {
                    let seq = r.get::<_, i64>(2)? as u64;
                    Ok((youke_federation::protocol::DocUpdate { id: r.get(0)?, kind: r.get(1)?, seq, bytes: r.get(3)?, version: r.get(4)?, full: true }, seq))
                })?;
                Ok::<_, DocError>(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .expect("docs");
        let mut last = after;
        for (d, seq) in docs {
            to.write(|tx| documents::merge_remote(tx, w_to, &crate::kinds::ALL, &d, source)).expect("merge");
            last = seq;
        }
        last
    }

    fn lesson(t: &Tree, compliance: Option<&str>) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let new = lessons::NewLesson { title: "勾股定理".into(), teacher: "王芳".into(), compliance: compliance.unwrap_or("").into(), ..Default::default() };
        t.school.write(|tx| lessons::save(tx, &t.ws, &mut lessons::new_document(&t.ws, &id, &new)?)).expect("lesson");
        id
    }

    fn report(fail_v2: bool) -> String {
        let rule = |id: &str, verdict: &str| serde_json::json!({"id": id, "item": "resolution", "rule": "HD master at least 1920x1080", "verdict": verdict, "measured": "1280x720"});
        serde_json::json!({"rules": [rule("V1", "pass"), rule("V2", if fail_v2 { "fail" } else { "pass" }), rule("A5", "warn")]}).to_string()
    }

    #[test]
    fn a_competition_runs_from_notice_to_award_across_two_tiers() {
        let t = tree();
        let now = now_ms();
        let comp = t
            .province
            .write(|tx| catalog::create_competition(tx, &t.wp, &Competition { title: "2026年优质课评选".into(), requires_standard: true, closes_at: now + 3_600_000, ..Default::default() }))
            .expect("competition");
        let sent = ship(&t.province, &t.school, &t.ws, Source::Parent(&t.wp.node_id), 0);

        // Refused: not checked, failing V2, another school's lesson; accepted: a compliant one.
        let unchecked = lesson(&t, None);
        let failing = lesson(&t, Some(&report(true)));
        let good = lesson(&t, Some(&report(false)));
        let err = t.school.write(|tx| submit(tx, &t.ws, &comp.id, &unchecked, now)).expect_err("unchecked");
        assert!(matches!(err, CompetitionError::NotChecked), "{err}");
        let err = t.school.write(|tx| submit(tx, &t.ws, &comp.id, &failing, now)).expect_err("failing");
        match &err {
            CompetitionError::NotCompliant(rules) => assert_eq!(rules.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["V2"]),
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("V2 resolution is 1280x720"), "{err}");
        let e = t.school.write(|tx| submit(tx, &t.ws, &comp.id, &good, now)).expect("submit");
        assert_eq!(e.lesson.share_level, Tier::Province, "raised to the organizer's tier");
        let again = t.school.write(|tx| submit(tx, &t.ws, &comp.id, &good, now + 1)).expect("again");
        assert_eq!(again.submitted_at, now, "entering again changes nothing");
        // After the deadline: refused.
        let late = lesson(&t, Some(&report(false)));
        let err = t.school.write(|tx| submit(tx, &t.ws, &comp.id, &late, now + 7_200_000)).expect_err("late");
        assert!(matches!(err, CompetitionError::Closed(_)), "{err}");
        // The school cannot judge what the province runs.
        let err = t.school.write(|tx| assign(tx, &t.ws, &comp.id, &good, &["zhuanjia1".into()])).expect_err("not here");
        assert!(matches!(err, CompetitionError::NotHere(_)), "{err}");

        // The entry reaches the province with the lesson.
        ship(&t.school, &t.province, &t.wp, Source::Child("school-peer"), 0);
        let all = t.province.read(|c| entries(c, &comp.id, Viewer::Admin)).expect("entries");
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].lesson.id.as_str(), all[0].submitted_by.as_str(), all[0].late), (good.as_str(), "第一中学", false));

        // Assignments: experts only; each expert sees only their own.
        let err = t.province.write(|tx| assign(tx, &t.wp, &comp.id, &good, &["laoshi".into()])).expect_err("teacher");
        assert!(err.to_string().contains("not an expert"), "{err}");
        t.province.write(|tx| assign(tx, &t.wp, &comp.id, &good, &["zhuanjia1".into()])).expect("assign");
        assert_eq!(t.province.read(|c| entries(c, &comp.id, Viewer::Expert("zhuanjia1"))).expect("mine").len(), 1);
        assert_eq!(t.province.read(|c| entries(c, &comp.id, Viewer::Expert("zhuanjia2"))).expect("theirs").len(), 0);
        let err = t.province.write(|tx| score(tx, &t.wp, &comp.id, &good, "zhuanjia2", &BTreeMap::new(), "")).expect_err("unassigned");
        assert!(matches!(err, CompetitionError::NotAssigned(_)), "{err}");

        // Scores: every rubric line within its maximum.
        let mut s: BTreeMap<String, i64> = comp.rubric.iter().map(|k| (k.name.clone(), k.max)).collect();
        s.insert("教学设计".into(), 31);
        assert!(t.province.write(|tx| score(tx, &t.wp, &comp.id, &good, "zhuanjia1", &s, "")).is_err(), "over the maximum");
        s.insert("教学设计".into(), 25);
        s.remove("视频质量");
        assert!(t.province.write(|tx| score(tx, &t.wp, &comp.id, &good, "zhuanjia1", &s, "")).is_err(), "a line missing");
        s.insert("视频质量".into(), 8);
        let j = t.province.write(|tx| score(tx, &t.wp, &comp.id, &good, "zhuanjia1", &s, "结构清晰")).expect("score");
        assert_eq!(j.total, Some(25 + 40 + 20 + 8));
        assert_eq!(t.province.read(|c| entries(c, &comp.id, Viewer::Admin)).expect("all")[0].average, Some(93.0));
        assert!(t.province.read(|c| entries(c, &comp.id, Viewer::Public)).expect("public")[0].judges.is_empty(), "scores stay with the organizer");

        // Results: an award for a lesson not entered is refused; then published once.
        assert!(t.province.write(|tx| publish_results(tx, &t.wp, &comp.id, &[(failing.clone(), "二等奖".into())])).is_err());
        let done = t.province.write(|tx| publish_results(tx, &t.wp, &comp.id, &[(good.clone(), "一等奖".into())])).expect("publish");
        assert_eq!(stage(&done, now), Stage::Awarded);
        assert!(matches!(t.province.write(|tx| publish_results(tx, &t.wp, &comp.id, &[(good.clone(), "一等奖".into())])), Err(CompetitionError::Decided)));

        // Down to the school: the award and the archive collection with the winner.
        ship(&t.province, &t.school, &t.ws, Source::Parent(&t.wp.node_id), sent);
        let at_school = t.school.read(|c| of_lesson(c, &good)).expect("of lesson");
        assert_eq!(at_school.len(), 1);
        assert_eq!(at_school[0].1.as_deref(), Some("一等奖"));
        let cols = t.school.read(catalog::collections).expect("collections");
        assert_eq!(cols.len(), 1);
        assert_eq!((cols[0].id.as_str(), cols[0].lessons.as_slice(), cols[0].featured), (done.archive_collection.as_str(), std::slice::from_ref(&good), true));
        assert!(cols[0].title.contains("获奖课例"));
    }

    #[test]
    fn stages_follow_the_dates_and_the_results() {
        let c = Competition { opens_at: 100, closes_at: 200, ..Default::default() };
        assert_eq!([stage(&c, 50), stage(&c, 150), stage(&c, 250)], [Stage::Upcoming, Stage::Open, Stage::Judging]);
        assert_eq!(stage(&Competition { awarded_at: 300, ..c.clone() }, 150), Stage::Awarded);
        assert_eq!(stage(&Competition { closes_at: 0, ..c }, i64::MAX), Stage::Open, "no deadline");
    }
}
