//! Relevance of Chinese lesson search: 60 labelled queries over 600 lessons with realistic
//! titles across grades and subjects (search::corpus). A query's relevant lessons are the ones
//! its intent names (a curriculum topic, a teacher, a school, a grade and subject), judged from
//! what the corpus generator made, not from what the index matches. Prints precision@5 and recall
//! per query and fails when the means fall below the recorded baseline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use youke_search::corpus::{self, TOPICS};
use youke_search::{LessonDoc, LessonIndex, Request};

const LESSONS: usize = 600;
const SEED: u64 = 2026;
/// Results examined for recall.
const DEPTH: usize = 200;
/// Baseline: the means measured when this test was written, less a small margin. Raise them
/// when search gets better; a change that lowers them is a regression.
const MIN_PRECISION_AT_5: f64 = 0.98;
const MIN_RECALL: f64 = 0.97;

enum Intent {
    /// Lessons about any of these topics (titles in TOPICS).
    Topics(&'static [&'static str]),
    Teacher(String),
    /// A school whose name contains every part.
    School(&'static [&'static str]),
    GradeSubject(&'static str, &'static str),
}

fn queries() -> Vec<(String, Intent)> {
    use Intent::*;
    let topic = |q: &str, t: &'static [&'static str]| (q.to_string(), Topics(t));
    let mut q = vec![
        topic("勾股定理", &["勾股定理"]),
        topic("勾股", &["勾股定理"]),
        topic("怎么证明勾股定理", &["勾股定理"]),
        topic("牛顿第一定律", &["牛顿第一定律"]),
        topic("牛顿", &["牛顿第一定律", "牛顿第二定律"]),
        topic("惯性", &["牛顿第一定律"]),
        topic("一元二次方程", &["一元二次方程的解法"]),
        topic("配方法", &["一元二次方程的解法"]),
        topic("二次函数", &["二次函数的图像和性质"]),
        topic("抛物线", &["二次函数的图像和性质"]),
        topic("光合作用", &["光合作用"]),
        topic("静夜思", &["静夜思"]),
        topic("李白", &["静夜思", "望天门山"]),
        topic("朱自清", &["春", "背影", "荷塘月色"]),
        topic("鲁迅", &["从百草园到三味书屋"]),
        topic("文言文", &["王戎不取道旁李", "桃花源记", "岳阳楼记", "赤壁赋"]),
        topic("浮力", &["阿基米德原理"]),
        topic("初二物理 压强", &["液体的压强"]),
        topic("欧姆定律", &["欧姆定律"]),
        topic("串联电路", &["串联和并联"]),
        topic("氧化还原反应", &["氧化还原反应"]),
        topic("质量守恒", &["质量守恒定律"]),
        topic("酸碱中和", &["中和反应"]),
        topic("细胞呼吸", &["细胞呼吸的原理"]),
        topic("DNA复制", &["DNA的复制"]),
        topic("鸦片战争", &["鸦片战争"]),
        topic("五四运动", &["五四运动"]),
        topic("秦始皇", &["秦统一中国"]),
        topic("地球自转", &["地球的运动"]),
        topic("黄河", &["中国的河流"]),
        topic("温室效应", &["大气的受热过程"]),
        topic("Python", &["Python 编程入门", "用 Python 实现冒泡排序"]),
        topic("冒泡排序", &["用 Python 实现冒泡排序"]),
        topic("Scratch", &["图形化编程 Scratch 动画"]),
        topic("圆的面积", &["圆的面积"]),
        topic("乘法口诀", &["表内乘法"]),
        topic("等比数列", &["等比数列的前n项和"]),
        topic("三角函数", &["三角函数的诱导公式"]),
        topic("导数", &["导数的应用"]),
        topic("电磁感应", &["电磁感应综合"]),
        topic("自由落体", &["自由落体运动"]),
        topic("足球", &["足球脚内侧传球"]),
        topic("水墨画", &["水墨游戏"]),
        topic("火山地震", &["火山和地震"]),
        topic("太阳系", &["太阳系大家庭"]),
        topic("高一数学 集合", &["集合的概念"]),
        topic("英语 定语从句", &["Teenage Life 阅读课"]),
        topic("桃花源记 陶渊明", &["桃花源记"]),
        // Pinyin and initials, typed without an input method.
        topic("gougudingli", &["勾股定理"]),
        topic("niudun", &["牛顿第一定律", "牛顿第二定律"]),
        topic("yiyuanerci", &["一元二次方程的解法"]),
        topic("guanghezuoyong", &["光合作用"]),
        topic("jingyesi", &["静夜思"]),
        topic("ggdl", &["勾股定理"]),
        topic("oumudinglv", &["欧姆定律"]),
        topic("yapianzhanzheng", &["鸦片战争"]),
    ];
    q.push((corpus::teacher_name(0), Teacher(corpus::teacher_name(0))));
    q.push((corpus::teacher_name(31), Teacher(corpus::teacher_name(31))));
    q.push(("西湖区实验小学".into(), School(&["西湖区", "实验小学"])));
    q.push(("初三化学".into(), GradeSubject("初三", "化学")));
    q
}

fn relevant(intent: &Intent, lessons: &[(LessonDoc, usize)]) -> HashSet<String> {
    let matches = |d: &LessonDoc, topic: usize| match intent {
        Intent::Topics(titles) => titles.iter().any(|t| corpus::topic_index(t).expect("a topic of the corpus") == topic),
        Intent::Teacher(name) => d.teacher == *name,
        Intent::School(parts) => parts.iter().all(|p| d.school.contains(p)),
        Intent::GradeSubject(g, s) => d.grade == *g && d.subject == *s,
    };
    lessons.iter().filter(|(d, t)| matches(d, *t)).map(|(d, _)| d.id.clone()).collect()
}

#[test]
fn labelled_chinese_queries_keep_their_precision_and_recall() {
    let lessons: Vec<(LessonDoc, usize)> = (0..LESSONS).map(|i| corpus::lesson(SEED, i)).collect();
    let subjects: HashSet<&str> = lessons.iter().map(|(d, _)| d.subject.as_str()).collect();
    let grades: HashSet<&str> = lessons.iter().map(|(d, _)| d.grade.as_str()).collect();
    let idx = LessonIndex::in_memory().unwrap();
    idx.upsert(&lessons.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>()).unwrap();
    idx.commit(1).unwrap();

    let queries = queries();
    assert!(queries.len() >= 50 && TOPICS.len() >= 100);
    let (mut sum_p, mut sum_r) = (0.0, 0.0);
    println!("{} queries over {LESSONS} lessons ({} subjects, {} grades)", queries.len(), subjects.len(), grades.len());
    println!("{:<24} {:>4} {:>6} {:>6}", "query", "rel", "P@5", "recall");
    let mut worst = Vec::new();
    for (text, intent) in &queries {
        let rel = relevant(intent, &lessons);
        assert!(!rel.is_empty(), "query {text:?} has no relevant lesson in the corpus: pick another seed or intent");
        let found: Vec<String> = idx.search(&Request::text(text, DEPTH)).unwrap().hits.into_iter().map(|h| h.id).collect();
        let top5 = found.iter().take(5).filter(|id| rel.contains(*id)).count();
        // With fewer than five relevant lessons, a perfect top five holds all of them.
        let p5 = top5 as f64 / rel.len().min(5) as f64;
        let recall = found.iter().filter(|id| rel.contains(*id)).count() as f64 / rel.len() as f64;
        println!("{text:<24} {:>4} {p5:>6.2} {recall:>6.2}", rel.len());
        if p5 < 1.0 || recall < 1.0 {
            worst.push(text.clone());
        }
        sum_p += p5;
        sum_r += recall;
    }
    let n = queries.len() as f64;
    let (p, r) = (sum_p / n, sum_r / n);
    println!("mean precision@5 {p:.3}, mean recall {r:.3}; imperfect: {worst:?}");
    assert!(p >= MIN_PRECISION_AT_5, "mean precision@5 fell to {p:.3} (baseline {MIN_PRECISION_AT_5})");
    assert!(r >= MIN_RECALL, "mean recall fell to {r:.3} (baseline {MIN_RECALL})");
}

