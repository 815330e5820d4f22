//! Marks the query's words in a title or description: HTML-escaped text with `<b>` around
//! each match, cut to a window around the first match when the text is long.

/// `text` with every occurrence of a needle (ASCII case ignored) in `<b>`, escaped; at most
/// `max_chars` characters around the first match (with … where cut). `None` if nothing matches.
pub fn mark(text: &str, needles: &[String], max_chars: usize) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    // Byte ranges of matches, longest needles first so 勾股定理 wins over 勾股.
    let mut sorted: Vec<&String> = needles.iter().filter(|n| !n.is_empty()).collect();
    sorted.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for n in sorted {
        let n = n.to_ascii_lowercase();
        let mut from = 0;
        while let Some(i) = lower[from..].find(&n) {
            let (s, e) = (from + i, from + i + n.len());
            if !ranges.iter().any(|&(a, b)| s < b && a < e) {
                ranges.push((s, e));
            }
            from = e;
        }
    }
    if ranges.is_empty() {
        return None;
    }
    ranges.sort_unstable();
    // The window: from a little before the first match, max_chars long, on char boundaries.
    let first = ranges[0].0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let (start, end) = if chars.len() <= max_chars {
        (0, text.len())
    } else {
        let at = chars.iter().position(|(b, _)| *b >= first).unwrap_or(0);
        let s = at.saturating_sub(max_chars / 4);
        let e = (s + max_chars).min(chars.len());
        let s = e.saturating_sub(max_chars);
        (chars[s].0, chars.get(e).map_or(text.len(), |(b, _)| *b))
    };
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut pos = start;
    for (s, e) in ranges {
        if e <= start || s >= end {
            continue;
        }
        let (s, e) = (s.max(start), e.min(end));
        push_escaped(&mut out, &text[pos..s]);
        out.push_str("<b>");
        push_escaped(&mut out, &text[s..e]);
        out.push_str("</b>");
        pos = e;
    }
    push_escaped(&mut out, &text[pos..end]);
    if end < text.len() {
        out.push('…');
    }
    Some(out)
}

/// Escapes text for HTML element content and attribute values (the one escaper of the
/// project: the portal's pages use it too).
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

    fn n(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn marks_matches_escapes_and_cuts() {
        assert_eq!(mark("勾股定理", &n(&["勾股"]), 100).as_deref(), Some("<b>勾股</b>定理"));
        assert_eq!(mark("勾股定理与勾股数", &n(&["勾股", "勾股定理"]), 100).as_deref(), Some("<b>勾股定理</b>与<b>勾股</b>数"));
        assert_eq!(mark("Python 入门", &n(&["python"]), 100).as_deref(), Some("<b>Python</b> 入门"));
        assert_eq!(mark("<i>勾股</i>", &n(&["勾股"]), 100).as_deref(), Some("&lt;i&gt;<b>勾股</b>&lt;/i&gt;"));
        assert_eq!(mark("牛顿", &n(&["勾股"]), 100), None);
        let long = format!("{}浮力{}", "前".repeat(100), "后".repeat(100));
        let cut = mark(&long, &n(&["浮力"]), 20).expect("match");
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
}
