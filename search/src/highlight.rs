//! Finds the query's words in a title or description: the passage to show (cut to a window
//! around the first match when the text is long) and where the matches are in it. Rendering
//! (HTML with `<b>`, escaping) is the portal's.

/// A passage with the query's words found in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    /// The passage: the whole text, or a window of it.
    pub text: String,
    /// Byte ranges of the matches in `text`, in order, not overlapping.
    pub marks: Vec<(usize, usize)>,
    /// Text was cut before the passage, and after it.
    pub cut_before: bool,
    pub cut_after: bool,
}

/// `text` with every occurrence of a needle (ASCII case ignored) marked; at most `max_chars`
/// characters around the first match. `None` if nothing matches.
pub fn mark(text: &str, needles: &[String], max_chars: usize) -> Option<Marked> {
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
    let mut marks = Vec::new();
    for (s, e) in ranges {
        if e <= start || s >= end {
            continue;
        }
        marks.push((s.max(start) - start, e.min(end) - start));
    }
    Some(Marked { text: text[start..end].to_string(), marks, cut_before: start > 0, cut_after: end < text.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_matches_longest_first_and_cuts_a_window_around_the_first() {
        let m = mark("勾股定理与勾股数", &n(&["勾股", "勾股定理"]), 100).expect("match");
        assert_eq!(m.marks, vec![(0, 12), (15, 21)]);
        assert!(!m.cut_before && !m.cut_after);
        assert_eq!(mark("Python 入门", &n(&["python"]), 100).map(|m| m.marks), Some(vec![(0, 6)]));
        assert_eq!(mark("牛顿", &n(&["勾股"]), 100), None);
        let long = format!("{}浮力{}", "前".repeat(100), "后".repeat(100));
        let m = mark(&long, &n(&["浮力"]), 20).expect("match");
        assert!(m.cut_before && m.cut_after && m.text.chars().count() == 20, "{m:?}");
        assert_eq!(&m.text[m.marks[0].0..m.marks[0].1], "浮力");
    }
}
