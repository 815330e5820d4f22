//! HTML text for the portal: the one escaper of the project, and search results' marked
//! passages rendered with `<b>` around the query's words ([`youke_search::Marked`]).

use youke_search::Marked;

/// A marked passage as HTML: escaped, matches in `<b>`, `…` where the text was cut.
pub fn marked(m: &Marked) -> String {
    let mut out = String::with_capacity(m.text.len() + 16 * m.marks.len() + 8);
    if m.cut_before {
        out.push('…');
    }
    let mut pos = 0;
    for &(s, e) in &m.marks {
        let (Some(before), Some(word)) = (m.text.get(pos..s), m.text.get(s..e)) else { continue };
        push_escaped(&mut out, before);
        out.push_str("<b>");
        push_escaped(&mut out, word);
        out.push_str("</b>");
        pos = e;
    }
    push_escaped(&mut out, m.text.get(pos..).unwrap_or_default());
    if m.cut_after {
        out.push('…');
    }
    out
}

/// Escapes text for HTML element content and attribute values (the one escaper of the
/// project).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    push_escaped(&mut out, s);
    out
}

/// The HTML replacement of a byte, for the five that need one.
fn replacement(b: u8) -> Option<&'static str> {
    match b {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'>' => Some("&gt;"),
        b'"' => Some("&quot;"),
        b'\'' => Some("&#39;"),
        _ => None,
    }
}

/// Appends `s` escaped to `out`.
pub fn push_escaped(out: &mut String, s: &str) {
    let _ = escape_into(out, s);
}

/// `s` escaped as it is formatted (`write!(page, "{}", Escaped(title))`), without a string of
/// its own.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        escape_into(f, self.0)
    }
}

/// Writes `s` escaped: the runs between special bytes are written whole (the special bytes are
/// all ASCII, so every cut is on a character boundary).
fn escape_into(w: &mut impl std::fmt::Write, s: &str) -> std::fmt::Result {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        if let Some(r) = replacement(b) {
            w.write_str(&s[last..i])?;
            w.write_str(r)?;
            last = i + 1;
        }
    }
    w.write_str(&s[last..])
}


#[cfg(test)]
mod tests {
    use super::*;
    use youke_search::{LessonDoc, LessonIndex, Request, mark};

    fn n(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    /// Search's marks rendered as the portal shows them.
    fn html(text: &str, needles: &[String], max_chars: usize) -> Option<String> {
        mark(text, needles, max_chars).map(|m| marked(&m))
    }

    #[test]
    fn marks_matches_escapes_and_cuts() {
        assert_eq!(html("勾股定理", &n(&["勾股"]), 100).as_deref(), Some("<b>勾股</b>定理"));
        assert_eq!(html("勾股定理与勾股数", &n(&["勾股", "勾股定理"]), 100).as_deref(), Some("<b>勾股定理</b>与<b>勾股</b>数"));
        assert_eq!(html("Python 入门", &n(&["python"]), 100).as_deref(), Some("<b>Python</b> 入门"));
        assert_eq!(html("<i>勾股</i>", &n(&["勾股"]), 100).as_deref(), Some("&lt;i&gt;<b>勾股</b>&lt;/i&gt;"));
        assert_eq!(html("牛顿", &n(&["勾股"]), 100), None);
        let long = format!("{}浮力{}", "前".repeat(100), "后".repeat(100));
        let cut = html(&long, &n(&["浮力"]), 20).expect("match");
        assert!(cut.starts_with('…') && cut.ends_with('…') && cut.contains("<b>浮力</b>"), "{cut}");
        assert!(cut.chars().count() <= 20 + 2 + 7, "{cut}");
    }

    #[test]
    fn escapes_the_five_and_keeps_the_rest() {
        let raw = "勾股<定理> & \"引号\" 'x' 末尾&";
        let want = "勾股&lt;定理&gt; &amp; &quot;引号&quot; &#39;x&#39; 末尾&amp;";
        assert_eq!(escape(raw), want);
        assert_eq!(Escaped(raw).to_string(), want);
        let mut out = String::from("前");
        push_escaped(&mut out, raw);
        assert_eq!(out, format!("前{want}"));
        assert_eq!(escape("没有特殊字符"), "没有特殊字符");
        assert_eq!(escape(""), "");
    }

    fn lesson(id: &str, title: &str, kp: &[&str]) -> LessonDoc {
        LessonDoc { id: id.into(), title: title.into(), knowledge_points: kp.iter().map(|s| s.to_string()).collect(), created_at_ms: 1_700_000_000_000, ..LessonDoc::default() }
    }

    /// A search hit as the portal renders it: (title, snippet).
    struct Shown {
        title_html: Option<String>,
        snippet_html: Option<String>,
    }

    fn shown(idx: &LessonIndex, q: &str) -> (String, Shown) {
        let r = idx.search(&Request::text(q, 10)).expect("search");
        let h = r.hits.into_iter().next().expect("a hit");
        (h.id, Shown { title_html: h.title_marks.as_ref().map(marked), snippet_html: h.snippet_marks.as_ref().map(marked) })
    }

    #[test]
    fn highlights_title_and_description() {
        let idx = LessonIndex::in_memory().expect("index");
        idx.upsert(&[
            lesson("b", "牛顿第一定律", &["惯性"]),
            LessonDoc { description: "本节课通过实验探究浮力的大小与排开液体所受重力的关系。".into(), ..lesson("d", "阿基米德原理", &["浮力"]) },
        ])
        .expect("upsert");
        idx.commit(4).expect("commit");
        let (id, hit) = shown(&idx, "浮力");
        assert_eq!(id, "d");
        assert!(hit.snippet_html.as_deref().is_some_and(|s| s.contains("<b>浮力</b>")), "{:?}", hit.snippet_html);
        let (_, hit) = shown(&idx, "牛顿");
        assert_eq!(hit.title_html.as_deref(), Some("<b>牛顿</b>第一定律"));
        assert_eq!(hit.snippet_html, None);
        // Stored text is escaped.
        idx.upsert(&[lesson("x", "<script>勾股</script>", &[])]).expect("upsert");
        idx.commit(5).expect("commit");
        let (_, hit) = shown(&idx, "勾股");
        assert!(hit.title_html.as_deref().is_some_and(|t| !t.contains("<script>")), "{:?}", hit.title_html);
    }
}
