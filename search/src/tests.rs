use super::*;

fn lesson(id: &str, title: &str, teacher: &str, subject: &str, grade: &str, kp: &[&str]) -> LessonDoc {
    LessonDoc {
        id: id.into(),
        title: title.into(),
        teacher: teacher.into(),
        subject: subject.into(),
        grade: grade.into(),
        knowledge_points: kp.iter().map(|s| s.to_string()).collect(),
        created_at_ms: 1_700_000_000_000,
        ..LessonDoc::default()
    }
}

fn ids(r: &Results) -> Vec<&str> {
    r.hits.iter().map(|h| h.id.as_str()).collect()
}

fn find(idx: &LessonIndex, text: &str) -> Vec<String> {
    idx.search(&Request::text(text, 10)).expect("search").hits.into_iter().map(|h| h.id).collect()
}

fn sample() -> LessonIndex {
    let idx = LessonIndex::in_memory().expect("index");
    idx.upsert(&[
        LessonDoc { school: "杭州市西湖区实验小学".into(), ..lesson("a", "一元二次方程的解法", "王老师", "数学", "初三", &["配方法", "求根公式"]) },
        LessonDoc { views: 900, ..lesson("b", "牛顿第一定律", "李明", "物理", "初二", &["惯性"]) },
        lesson("c", "静夜思 古诗朗读", "张华", "语文", "一年级", &["李白"]),
        LessonDoc { description: "本节课通过实验探究浮力的大小与排开液体所受重力的关系。".into(), ..lesson("d", "阿基米德原理", "王芳", "物理", "初二", &["浮力"]) },
    ])
    .expect("upsert");
    idx.commit(4).expect("commit");
    idx
}

#[test]
fn finds_lessons_by_chinese_words_in_any_field() {
    let idx = sample();
    assert_eq!(find(&idx, "方程")[0], "a");
    assert_eq!(find(&idx, "牛顿"), ["b"]);
    assert_eq!(find(&idx, "惯性"), ["b"]);
    assert_eq!(find(&idx, "李白"), ["c"]);
    assert_eq!(find(&idx, "王老师")[0], "a");
    assert_eq!(find(&idx, "西湖区"), ["a"]);
    assert_eq!(find(&idx, "排开液体"), ["d"], "description");
    // Parts of words jieba keeps whole are found through bigrams.
    assert_eq!(find(&idx, "二次"), ["a"]);
    assert_eq!(find(&idx, "夜思"), ["c"]);
    assert!(find(&idx, "化学").is_empty());
    assert!(find(&idx, "  ，。").iter().all(|id| ["a", "b", "c", "d"].contains(&id.as_str())), "no words: everything, newest first");
    // Every word must match; 的 is no word.
    assert_eq!(find(&idx, "初二 物理 浮力"), ["d"]);
    assert_eq!(find(&idx, "牛顿的第一定律"), ["b"]);
    // Nothing matches every word: lessons matching any come back.
    assert_eq!(find(&idx, "牛顿 量子纠缠"), ["b"]);
}

#[test]
fn pinyin_and_initials_find_chinese_text() {
    let idx = sample();
    assert_eq!(find(&idx, "niudun"), ["b"]);
    assert_eq!(find(&idx, "NiuDun"), ["b"]);
    assert_eq!(find(&idx, "nd"), ["b"]);
    assert_eq!(find(&idx, "yiyuanerci"), ["a"]);
    assert_eq!(find(&idx, "jingyesi"), ["c"]);
    assert_eq!(find(&idx, "wangfang"), ["d"]);
    assert_eq!(find(&idx, "ajmd"), ["d"]);
    assert!(find(&idx, "xyz").is_empty());
}

#[test]
fn facets_count_and_filter() {
    let idx = sample();
    let req = Request { facets: true, ..Request::text("", 10) };
    let r = idx.search(&req).expect("search");
    assert_eq!(r.total, 4);
    let subjects = &r.facets.iter().find(|(d, _)| *d == Dim::Subject).expect("subject").1;
    assert_eq!(subjects[0], ("物理".to_string(), 2));
    let years = &r.facets.iter().find(|(d, _)| *d == Dim::Year).expect("year").1;
    assert_eq!(years, &[("2023".to_string(), 4)]);
    let compliance = &r.facets.iter().find(|(d, _)| *d == Dim::Compliance).expect("compliance").1;
    assert_eq!(compliance, &[("unchecked".to_string(), 4)]);

    let req = Request { filters: vec![(Dim::Subject, "物理".into())], facets: true, ..Request::text("", 10) };
    let r = idx.search(&req).expect("search");
    assert_eq!((r.total, ids(&r).len()), (2, 2));
    let req = Request { filters: vec![(Dim::Subject, "物理".into()), (Dim::Teacher, "王芳".into())], ..Request::text("", 10) };
    assert_eq!(ids(&idx.search(&req).expect("search")), ["d"], "dimensions combine");
    let req = Request { filters: vec![(Dim::Grade, "初二".into()), (Dim::Grade, "初三".into())], ..Request::text("", 10) };
    assert_eq!(idx.search(&req).expect("search").total, 3, "values of one dimension are alternatives");
    let req = Request { filters: vec![(Dim::Subject, "物理".into())], ..Request::text("惯性", 10) };
    assert_eq!(ids(&idx.search(&req).expect("search")), ["b"], "filters combine with text");
    let req = Request { filters: vec![(Dim::Subject, "语文".into())], ..Request::text("惯性", 10) };
    assert_eq!(idx.search(&req).expect("search").total, 0);
}

#[test]
fn orders_by_views_rating_and_date_and_blends_popularity_into_relevance() {
    let idx = LessonIndex::in_memory().expect("index");
    idx.upsert(&[
        LessonDoc { views: 10, rating_avg: 5.0, rating_count: 1, created_at_ms: 3, ..lesson("few", "光的折射", "", "物理", "", &[]) },
        LessonDoc { views: 5000, rating_avg: 4.6, rating_count: 40, created_at_ms: 2, ..lesson("many", "光的折射", "", "物理", "", &[]) },
        LessonDoc { views: 100, rating_avg: 2.0, rating_count: 30, created_at_ms: 1, ..lesson("low", "光的折射", "", "物理", "", &[]) },
    ])
    .expect("upsert");
    idx.commit(1).expect("commit");
    let by = |order| ids(&idx.search(&Request { order, ..Request::text("折射", 10) }).expect("search")).iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(by(Order::MostViewed), ["many", "low", "few"]);
    assert_eq!(by(Order::BestRated), ["many", "few", "low"], "one five-star vote does not top 40 votes of 4.6");
    assert_eq!(by(Order::Newest), ["few", "many", "low"]);
    assert_eq!(by(Order::Relevance), ["many", "few", "low"], "equal text: popularity and rating decide");
    assert!((bayes_rating(5.0, 1) - 10.0 / 3.0).abs() < 1e-9);
    assert_eq!(bayes_rating(0.0, 0), 3.0);
}

#[test]
fn pages_and_depth_limit() {
    let idx = LessonIndex::in_memory().expect("index");
    let docs: Vec<LessonDoc> = (0..25).map(|i| LessonDoc { created_at_ms: i, ..lesson(&format!("l{i:02}"), "勾股定理", "", "数学", "", &[]) }).collect();
    idx.upsert(&docs).expect("upsert");
    idx.commit(1).expect("commit");
    let page = |offset| idx.search(&Request { offset, order: Order::Newest, ..Request::text("勾股定理", 10) }).expect("search");
    let (p1, p3) = (page(0), page(20));
    assert_eq!((p1.total, p1.hits.len(), p3.hits.len()), (25, 10, 5));
    assert_eq!((p1.hits[0].id.as_str(), p3.hits[4].id.as_str()), ("l24", "l00"));
    assert!(matches!(idx.search(&Request { offset: MAX_DEPTH, ..Request::text("x", 10) }), Err(SearchError::TooDeep)));
}

#[test]
fn spoken_words_find_the_lesson_and_the_moment() {
    let idx = LessonIndex::in_memory().expect("index");
    let mut d = lesson("s", "第三章 复习", "王老师", "数学", "初二", &[]);
    d.cues = vec![(1_000, "同学们好".into()), (65_500, "今天我们来证明勾股定理".into()), (130_000, "下课".into())];
    idx.upsert(&[d, lesson("t", "勾股定理", "李老师", "数学", "初二", &[])]).expect("upsert");
    idx.commit(1).expect("commit");
    let hits = idx.search(&Request::text("证明", 10)).expect("search").hits;
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].id, "s");
    assert_eq!(hits[0].moments, vec![Moment { start_ms: 65_500, text: "今天我们来证明勾股定理".into() }]);
    let hits = idx.search(&Request::text("勾股定理", 10)).expect("search").hits;
    assert_eq!(hits[0].id, "t", "a title match outweighs a spoken one");
    assert_eq!(hits.iter().find(|h| h.id == "s").map(|h| h.moments.len()), Some(1));
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
    assert!(find(&idx, "旧标题").is_empty());
    assert_eq!(find(&idx, "折射"), ["a"]);
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

#[test]
fn a_damaged_segment_is_detected_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let idx = LessonIndex::open(dir.path()).expect("open");
        idx.upsert(&[lesson("a", "勾股定理", "", "", "", &[])]).expect("upsert");
        idx.commit(1).expect("commit");
    }
    // Truncate every segment file: what a disk error or a half-copied backup leaves.
    for e in std::fs::read_dir(dir.path()).expect("dir").flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".store") || name.ends_with(".idx") || name.ends_with(".term") {
            std::fs::write(e.path(), b"").expect("truncate");
        }
    }
    let (idx, recreated) = LessonIndex::open_or_recreate(dir.path()).expect("recreate");
    assert!(recreated);
    assert!(idx.is_empty());
}

#[test]
fn years_are_china_time() {
    // 2023-12-31T16:30:00Z is 2024-01-01 00:30 in Beijing.
    assert_eq!(year_of(1_704_040_200_000), 2024);
    assert_eq!(year_of(1_704_036_600_000), 2023);
    assert_eq!(year_of(0), 1970);
    assert_eq!(year_of(951_782_400_000), 2000);
}

#[test]
fn a_repeated_search_is_answered_from_the_cache_until_the_next_commit() {
    let idx = sample();
    let req = Request::text("物理", 10);
    let first = idx.search(&req).expect("search");
    assert_eq!(idx.cache.lock().expect("lock").entries.len(), 1);
    assert_eq!(idx.search(&req).expect("again"), first, "the same answer");
    // A commit makes a new generation: the new lesson is found at once.
    idx.upsert(&[lesson("e", "电路 串联与并联", "赵老师", "物理", "初三", &["电流"])]).expect("upsert");
    idx.commit(5).expect("commit");
    let after = idx.search(&req).expect("after the commit");
    assert_eq!(after.total, first.total + 1, "{:?}", ids(&after));
    // Bounded.
    for i in 0..RESULT_CACHE_ENTRIES + 10 {
        idx.search(&Request::text(&format!("物理 {i}"), 1)).expect("search");
    }
    assert!(idx.cache.lock().expect("lock").entries.len() <= RESULT_CACHE_ENTRIES);
}
