//! Realistic lesson metadata for the relevance tests and the benchmark: topics from the national
//! curriculum (人教版 chapters and their knowledge points), teachers and schools with real-looking
//! Chinese names, titles in the shapes schools give them, short descriptions. Deterministic for a
//! seed, so a test's labels stay true.

use crate::LessonDoc;

/// A curriculum topic: a lesson is about one of them.
#[derive(Debug, Clone, Copy)]
pub struct Topic {
    pub subject: &'static str,
    pub grade: &'static str,
    pub chapter: &'static str,
    pub title: &'static str,
    pub knowledge: &'static [&'static str],
}

const fn t(subject: &'static str, grade: &'static str, chapter: &'static str, title: &'static str, knowledge: &'static [&'static str]) -> Topic {
    Topic { subject, grade, chapter, title, knowledge }
}

/// The topics, across grades and subjects.
pub const TOPICS: &[Topic] = &[
    // 语文
    t("语文", "一年级", "第一单元 识字", "天地人", &["识字", "汉字书写"]),
    t("语文", "一年级", "第四单元 课文", "静夜思", &["李白", "古诗朗读", "思乡"]),
    t("语文", "二年级", "第一单元 课文", "小蝌蚪找妈妈", &["童话", "朗读"]),
    t("语文", "二年级", "第五单元 课文", "坐井观天", &["寓言", "成语"]),
    t("语文", "三年级", "第二单元 课文", "铺满金色巴掌的水泥道", &["比喻", "秋天"]),
    t("语文", "三年级", "第七单元 课文", "望天门山", &["李白", "古诗", "山水诗"]),
    t("语文", "四年级", "第二单元 课文", "蝙蝠和雷达", &["说明文", "仿生学"]),
    t("语文", "四年级", "第八单元 课文", "王戎不取道旁李", &["文言文", "世说新语"]),
    t("语文", "五年级", "第三单元 课文", "牛郎织女", &["民间故事", "复述"]),
    t("语文", "五年级", "第六单元 课文", "慈母情深", &["细节描写", "母爱"]),
    t("语文", "六年级", "第一单元 课文", "草原", &["老舍", "景物描写"]),
    t("语文", "六年级", "第二单元 课文", "狼牙山五壮士", &["革命传统", "人物描写"]),
    t("语文", "初一", "第一单元 课文", "春", &["朱自清", "散文", "修辞手法"]),
    t("语文", "初一", "第三单元 课文", "从百草园到三味书屋", &["鲁迅", "回忆性散文"]),
    t("语文", "初一", "第六单元 课文", "皇帝的新装", &["安徒生", "童话"]),
    t("语文", "初二", "第三单元 课文", "桃花源记", &["陶渊明", "文言文", "理想社会"]),
    t("语文", "初二", "第二单元 课文", "背影", &["朱自清", "父爱", "细节描写"]),
    t("语文", "初二", "第五单元 课文", "中国石拱桥", &["茅以升", "说明文", "说明方法"]),
    t("语文", "初三", "第一单元 课文", "沁园春·雪", &["毛泽东", "词", "诗词鉴赏"]),
    t("语文", "初三", "第三单元 课文", "岳阳楼记", &["范仲淹", "文言文", "先忧后乐"]),
    t("语文", "高一", "第一单元", "沁园春·长沙", &["毛泽东", "意象", "诗词鉴赏"]),
    t("语文", "高一", "第七单元", "荷塘月色", &["朱自清", "通感", "散文"]),
    t("语文", "高二", "第三单元", "赤壁赋", &["苏轼", "文言文", "主客问答"]),
    t("语文", "高三", "作文专题", "议论文写作", &["论点", "论据", "论证方法"]),
    // 数学
    t("数学", "一年级", "第二单元", "20以内的进位加法", &["凑十法", "加法"]),
    t("数学", "二年级", "第四单元", "表内乘法", &["乘法口诀", "乘法"]),
    t("数学", "三年级", "第八单元", "分数的初步认识", &["分数", "几分之一"]),
    t("数学", "四年级", "第三单元", "运算律", &["加法交换律", "乘法分配律"]),
    t("数学", "五年级", "第三单元", "长方体和正方体的体积", &["体积", "容积"]),
    t("数学", "五年级", "第五单元", "简易方程", &["方程", "等式的性质"]),
    t("数学", "六年级", "第二单元", "圆的面积", &["圆", "圆周率", "面积公式"]),
    t("数学", "六年级", "第四单元", "比例", &["正比例", "反比例"]),
    t("数学", "初一", "第一章 有理数", "有理数的加法", &["有理数", "绝对值"]),
    t("数学", "初一", "第三章 一元一次方程", "解一元一次方程", &["移项", "去括号", "一元一次方程"]),
    t("数学", "初二", "第十七章 勾股定理", "勾股定理", &["直角三角形", "勾股定理证明", "赵爽弦图"]),
    t("数学", "初二", "第十八章 平行四边形", "平行四边形的判定", &["平行四边形", "对角线"]),
    t("数学", "初二", "第十九章 一次函数", "一次函数的图像", &["一次函数", "函数图像", "斜率"]),
    t("数学", "初三", "第二十一章 一元二次方程", "一元二次方程的解法", &["配方法", "求根公式", "因式分解法"]),
    t("数学", "初三", "第二十二章 二次函数", "二次函数的图像和性质", &["二次函数", "抛物线", "顶点坐标"]),
    t("数学", "初三", "第二十四章 圆", "垂直于弦的直径", &["垂径定理", "圆"]),
    t("数学", "高一", "第一章 集合与常用逻辑用语", "集合的概念", &["集合", "元素", "子集"]),
    t("数学", "高一", "第五章 三角函数", "三角函数的诱导公式", &["三角函数", "诱导公式"]),
    t("数学", "高二", "第一章 空间向量与立体几何", "空间向量的数量积", &["空间向量", "数量积"]),
    t("数学", "高二", "第四章 数列", "等比数列的前n项和", &["等比数列", "数列求和"]),
    t("数学", "高三", "一轮复习", "导数的应用", &["导数", "单调性", "极值"]),
    // 英语
    t("英语", "三年级", "Unit 1", "Hello! 问候与介绍", &["greetings", "字母"]),
    t("英语", "五年级", "Unit 3", "What would you like? 点餐用语", &["food", "would like"]),
    t("英语", "初一", "Unit 2", "This is my sister 家庭成员", &["family", "指示代词"]),
    t("英语", "初二", "Unit 5", "Do you want to watch a game show? 电视节目", &["动词不定式", "TV shows"]),
    t("英语", "初三", "Unit 4", "I used to be afraid of the dark", &["used to", "过去习惯"]),
    t("英语", "高一", "Unit 1", "Teenage Life 阅读课", &["阅读理解", "定语从句"]),
    t("英语", "高二", "Unit 3", "Environmental Protection 写作课", &["书面表达", "环境保护"]),
    t("英语", "高三", "语法专题", "非谓语动词", &["动名词", "分词", "不定式"]),
    // 物理
    t("物理", "初二", "第一章 机械运动", "运动的快慢", &["速度", "匀速直线运动"]),
    t("物理", "初二", "第二章 声现象", "声音的产生与传播", &["声音", "振动", "声速"]),
    t("物理", "初二", "第四章 光现象", "光的折射", &["折射", "光现象"]),
    t("物理", "初二", "第八章 运动和力", "牛顿第一定律", &["惯性", "牛顿", "力与运动"]),
    t("物理", "初二", "第九章 压强", "液体的压强", &["压强", "液体压强", "连通器"]),
    t("物理", "初二", "第十章 浮力", "阿基米德原理", &["浮力", "阿基米德", "排开液体"]),
    t("物理", "初三", "第十五章 电流和电路", "串联和并联", &["串联电路", "并联电路"]),
    t("物理", "初三", "第十七章 欧姆定律", "欧姆定律", &["电阻", "电流", "电压"]),
    t("物理", "初三", "第二十章 电与磁", "电磁铁", &["电磁铁", "磁场"]),
    t("物理", "高一", "第四章 运动和力的关系", "牛顿第二定律", &["加速度", "牛顿", "质量"]),
    t("物理", "高一", "第二章 匀变速直线运动", "自由落体运动", &["自由落体", "重力加速度"]),
    t("物理", "高二", "第十章 静电场", "电场强度", &["电场", "库仑定律"]),
    t("物理", "高三", "二轮复习", "电磁感应综合", &["法拉第电磁感应定律", "楞次定律"]),
    // 化学
    t("化学", "初三", "第一单元 走进化学世界", "物质的变化和性质", &["化学变化", "物理变化"]),
    t("化学", "初三", "第二单元 我们周围的空气", "氧气的制取", &["氧气", "催化剂", "实验室制取"]),
    t("化学", "初三", "第五单元 化学方程式", "质量守恒定律", &["质量守恒", "化学方程式"]),
    t("化学", "初三", "第十单元 酸和碱", "中和反应", &["酸碱中和", "pH"]),
    t("化学", "高一", "第一章 物质及其变化", "氧化还原反应", &["氧化剂", "还原剂", "电子转移"]),
    t("化学", "高一", "第二章 海水中的重要元素", "钠及其化合物", &["钠", "过氧化钠", "碳酸钠"]),
    t("化学", "高二", "第一章 化学反应的热效应", "反应热与焓变", &["焓变", "热化学方程式"]),
    t("化学", "高二", "第三章 水溶液中的离子反应", "盐类的水解", &["水解", "电离平衡"]),
    // 生物
    t("生物", "初一", "第三单元 生物圈中的绿色植物", "光合作用", &["光合作用", "叶绿体", "二氧化碳"]),
    t("生物", "初一", "第二单元 细胞", "植物细胞", &["细胞结构", "显微镜"]),
    t("生物", "初二", "第七单元 生物的生殖", "基因的显性和隐性", &["遗传", "基因", "性状"]),
    t("生物", "高一", "第五章 细胞的能量供应", "细胞呼吸的原理", &["有氧呼吸", "无氧呼吸", "线粒体"]),
    t("生物", "高二", "第一章 人体的内环境", "内环境的稳态", &["稳态", "内环境"]),
    t("生物", "高三", "遗传专题", "DNA的复制", &["DNA", "半保留复制"]),
    // 历史
    t("历史", "初一", "第一单元 史前时期", "远古时期的人类活动", &["北京人", "山顶洞人"]),
    t("历史", "初一", "第三单元 秦汉时期", "秦统一中国", &["秦始皇", "中央集权"]),
    t("历史", "初二", "第一单元 中国开始沦为半殖民地半封建社会", "鸦片战争", &["林则徐", "虎门销烟", "南京条约"]),
    t("历史", "初二", "第四单元 新民主主义革命的开始", "五四运动", &["五四精神", "新文化运动"]),
    t("历史", "初三", "第一单元 古代亚非文明", "古代埃及", &["金字塔", "尼罗河"]),
    t("历史", "高一", "第二单元 三国两晋南北朝", "三国两晋南北朝的政权更迭", &["三国", "民族交融"]),
    // 地理
    t("地理", "初一", "第一章 地球和地图", "地球的运动", &["自转", "公转", "昼夜交替"]),
    t("地理", "初一", "第三章 天气与气候", "降水的变化与分布", &["降水", "气候"]),
    t("地理", "初二", "第二章 中国的自然环境", "中国的河流", &["长江", "黄河", "水系"]),
    t("地理", "高一", "第二章 地球上的大气", "大气的受热过程", &["大气", "温室效应"]),
    t("地理", "高二", "第一章 地球的运动", "地球运动的地理意义", &["昼夜长短", "正午太阳高度"]),
    // 道德与法治、思想政治
    t("道德与法治", "初一", "第一单元 成长的节拍", "中学时代", &["成长", "梦想"]),
    t("道德与法治", "初二", "第二单元 遵守社会规则", "遵守规则", &["规则", "社会秩序"]),
    t("道德与法治", "初三", "第二单元 民主与法治", "建设法治中国", &["法治", "依法治国"]),
    t("思想政治", "高一", "第一课 社会主义从空想到科学", "科学社会主义的理论与实践", &["社会主义", "马克思主义"]),
    // 科学、信息技术
    t("科学", "三年级", "水", "水的三态变化", &["蒸发", "凝结", "温度"]),
    t("科学", "四年级", "电路", "简易电路", &["电路", "导体", "绝缘体"]),
    t("科学", "五年级", "地球表面的变化", "火山和地震", &["火山", "地震", "地壳"]),
    t("科学", "六年级", "宇宙", "太阳系大家庭", &["太阳系", "行星"]),
    t("信息技术", "初一", "第二单元", "Python 编程入门", &["Python", "变量", "程序设计"]),
    t("信息技术", "初二", "第三单元", "图形化编程 Scratch 动画", &["Scratch", "循环结构"]),
    t("信息技术", "高一", "第三章 算法与程序实现", "用 Python 实现冒泡排序", &["Python", "排序算法", "冒泡排序"]),
    // 艺术、体育
    t("音乐", "三年级", "第二单元", "欣赏《彼得与狼》", &["交响童话", "乐器"]),
    t("美术", "四年级", "第五课", "水墨游戏", &["水墨画", "中国画"]),
    t("体育", "初二", "田径", "立定跳远", &["跳远", "动作要领"]),
    t("体育", "五年级", "球类", "足球脚内侧传球", &["足球", "传球"]),
];

/// Family names, most frequent first.
const SURNAMES: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "罗", "高", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹"];
const GIVEN: &[&str] = &["芳", "明", "伟", "静", "敏", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "超", "秀英", "建华", "晓东", "海燕", "志强", "红梅", "文博", "子涵", "雨萱", "思远", "佳怡", "俊杰", "欣怡", "浩然"];
const CITIES: &[(&str, &[&str])] = &[
    ("杭州市", &["西湖区", "上城区", "拱墅区", "滨江区", "萧山区"]),
    ("宁波市", &["海曙区", "鄞州区", "江北区", "慈溪市"]),
    ("温州市", &["鹿城区", "瓯海区", "瑞安市", "乐清市"]),
    ("绍兴市", &["越城区", "柯桥区", "诸暨市"]),
    ("金华市", &["婺城区", "义乌市", "东阳市"]),
    ("丽水市", &["莲都区", "龙泉市", "遂昌县", "景宁畲族自治县"]),
];
const SCHOOL_KINDS: &[&str] = &["实验小学", "第一小学", "中心小学", "外国语学校", "第一中学", "第二中学", "实验中学", "育才中学", "高级中学"];
/// Title shapes; the last two leave the topic out, as schools do (the chapter, knowledge points
/// and description still tell it).
const TITLE_SHAPES: &[&str] = &["{t}", "{t}（第一课时）", "{t}（第二课时）", "《{t}》教学设计", "{t} 复习课", "{t}——公开课", "{t} 优质课", "{t}说课", "{c} 习题讲评", "{c} 课堂实录"];
const DESCRIPTIONS: &[&str] = &[
    "本节课围绕{k}展开，通过情境导入和小组合作，帮助学生理解{t}。",
    "教师从生活实例出发讲解{k}，板书清晰，重难点突出。",
    "通过探究活动认识{k}，培养学生的学科核心素养。",
    "复习{t}的主要内容，梳理{k}等知识点并配有典型例题。",
    "",
];

/// A small, fast, deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The teacher with number `n` (names repeat as they do in a province).
pub fn teacher_name(n: usize) -> String {
    format!("{}{}", SURNAMES[n % SURNAMES.len()], GIVEN[(n / SURNAMES.len()) % GIVEN.len()])
}

/// The school with number `n`.
pub fn school_name(n: usize) -> String {
    let (city, districts) = CITIES[n % CITIES.len()];
    let district = districts[(n / CITIES.len()) % districts.len()];
    let kind = SCHOOL_KINDS[(n / 7) % SCHOOL_KINDS.len()];
    format!("{city}{district}{kind}")
}

/// Lesson `i` of a generated corpus, and the index of its topic in [`TOPICS`]. The same
/// (seed, i) always gives the same lesson.
pub fn lesson(seed: u64, i: usize) -> (LessonDoc, usize) {
    let mut r = Rng::new(seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    let topic_ix = r.below(TOPICS.len());
    let topic = &TOPICS[topic_ix];
    // A few teachers give many lessons; schools are spread evenly.
    let teacher = teacher_name(if r.below(4) == 0 { r.below(40) } else { r.below(SURNAMES.len() * GIVEN.len()) });
    let school = school_name(r.below(300));
    let title = r.pick(TITLE_SHAPES).replace("{t}", topic.title).replace("{c}", topic.chapter);
    let k = r.pick(topic.knowledge).to_string();
    let description = r.pick(DESCRIPTIONS).replace("{t}", topic.title).replace("{k}", &k);
    let views = {
        // Heavy-tailed, as views are.
        let u = (r.next_u64() % 1_000_000) as f64 / 1_000_000.0;
        (1.0 / (1.0 - u * 0.999)).powf(1.6) as u64
    };
    let rating_count = r.below(30) as u64;
    let rating_avg = if rating_count == 0 { 0.0 } else { 3.0 + (r.below(21) as f64) / 10.0 };
    let created_at_ms = 1_600_000_000_000 + (r.next_u64() % 190_000_000_000) as i64;
    let doc = LessonDoc {
        id: format!("{seed:x}-{i:08}"),
        title,
        teacher,
        school,
        subject: topic.subject.to_string(),
        grade: topic.grade.to_string(),
        textbook_chapter: format!("人教版 {}", topic.chapter),
        knowledge_points: topic.knowledge.iter().map(|s| s.to_string()).collect(),
        tags: if r.below(5) == 0 { vec!["优质课".into()] } else { Vec::new() },
        description,
        cues: Vec::new(),
        origin_tier: ["school", "school", "school", "city", "province"][r.below(5)].to_string(),
        compliance: ["pass", "fail", "unchecked"][r.below(3)].to_string(),
        created_at_ms,
        views,
        rating_avg,
        rating_count,
    };
    (doc, topic_ix)
}

/// Indices in [`TOPICS`] of the topics with this title.
pub fn topic_index(title: &str) -> Option<usize> {
    TOPICS.iter().position(|t| t.title == title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_is_deterministic_and_varied() {
        let (a, ta) = lesson(7, 3);
        let (b, tb) = lesson(7, 3);
        assert_eq!((a, ta), (b, tb));
        let subjects: std::collections::HashSet<_> = (0..500).map(|i| lesson(1, i).0.subject).collect();
        assert!(subjects.len() >= 10, "{subjects:?}");
        let titles: std::collections::HashSet<_> = TOPICS.iter().map(|t| t.title).collect();
        assert_eq!(titles.len(), TOPICS.len(), "topic titles are unique");
        assert!(TOPICS.len() >= 100);
    }
}
