//! Text analysis for Chinese lesson metadata: jieba words, character bigrams and pinyin.
//!
//! - Words: jieba in search mode (一元二次方程 also yields 一元, 二次, 方程), lower-cased, with
//!   punctuation, whitespace and a few function words (的, 了, 和…) dropped.
//! - Bigrams: overlapping two-character grams, so part of a word jieba keeps whole (勾股 in
//!   勾股定理, 二次方程 in 一元二次方程) is still found.
//! - Pinyin: for every Han character of a run, the full pinyin of the run from that character on
//!   (`niudundiyidinglv` from 牛 in 牛顿第一定律) and its initials (`nddydl`), so a prefix
//!   search finds a word or phrase typed without an input method: `niudun`, `nd`, `yiyuanerci`.

use pinyin::ToPinyin;
use tantivy::tokenizer::{RemoveLongFilter, StopWordFilter, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer};

/// Tokens dropped by the word analyzer: whitespace, punctuation and function words that carry
/// no topic (的 in 牛顿的第一定律).
const DROPPED: &[&str] = &[
    " ", "\t", "\n", "\r", "，", "。", "、", "：", "；", "！", "？", "（", "）", "《", "》", "【", "】", "「", "」", "—", "…", ",", ".", ":", ";", "!",
    "?", "(", ")", "[", "]", "-", "_", "/", "\\", "\"", "'", "“", "”", "‘", "’", "·", "+", "&", "|", "的", "了", "和", "与", "及", "之",
];

/// Characters that end a bigram run or a pinyin run.
pub fn is_break_char(c: char) -> bool {
    is_break(c)
}

fn is_break(c: char) -> bool {
    c.is_whitespace() || c.is_ascii_punctuation() || "，。、：；！？（）《》【】「」—…“”‘’·".contains(c)
}

/// The word analyzer (jieba search mode).
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(tantivy_jieba::JiebaTokenizer::new())
        .filter(RemoveLongFilter::limit(40))
        .filter(CaseFold)
        .filter(StopWordFilter::remove(DROPPED.iter().map(|s| s.to_string())))
        .build()
}

/// Lower-cases tokens. Most tokens are Chinese words, which have no case: they pass untouched,
/// without the copy tantivy's `LowerCaser` makes of every non-ASCII token.
#[derive(Clone, Copy)]
pub struct CaseFold;

#[derive(Clone)]
pub struct CaseFoldFilter<T>(T);

impl TokenFilter for CaseFold {
    type Tokenizer<T: Tokenizer> = CaseFoldFilter<T>;
    fn transform<T: Tokenizer>(self, tokenizer: T) -> CaseFoldFilter<T> {
        CaseFoldFilter(tokenizer)
    }
}

impl<T: Tokenizer> Tokenizer for CaseFoldFilter<T> {
    type TokenStream<'a> = CaseFoldStream<T::TokenStream<'a>>;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        CaseFoldStream(self.0.token_stream(text))
    }
}

pub struct CaseFoldStream<S>(S);

/// Below U+3000 (CJK punctuation and beyond) are the scripts with case that lesson metadata uses.
fn has_case(c: char) -> bool {
    c < '\u{3000}' && !c.is_ascii() && c.is_uppercase()
}

impl<S: TokenStream> TokenStream for CaseFoldStream<S> {
    fn advance(&mut self) -> bool {
        if !self.0.advance() {
            return false;
        }
        let text = &mut self.0.token_mut().text;
        if text.chars().any(has_case) {
            *text = text.to_lowercase();
        } else {
            text.make_ascii_lowercase();
        }
        true
    }
    fn token(&self) -> &Token {
        self.0.token()
    }
    fn token_mut(&mut self) -> &mut Token {
        self.0.token_mut()
    }
}

/// Splits text into the index's word terms (deduplicated, in first-seen order).
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

/// A tokenizer whose tokens are computed up front by a function of the text, into a
/// [`Tokens`] buffer whose strings are reused from one text to the next.
#[derive(Clone, Copy)]
pub struct FnTokenizer(fn(&str, &mut Tokens));

/// Tokens of one text; the `Token`s (and their strings' memory) stay allocated between texts.
#[derive(Clone, Default)]
pub struct Tokens {
    items: Vec<Token>,
    len: usize,
}

impl Tokens {
    fn clear(&mut self) {
        self.len = 0;
    }
    /// A new token at `offset`, its text to be written by `fill`.
    fn push_with(&mut self, offset: usize, fill: impl FnOnce(&mut String)) {
        if self.len == self.items.len() {
            self.items.push(Token::default());
        }
        let position = self.len;
        let t = &mut self.items[position];
        t.text.clear();
        fill(&mut t.text);
        t.offset_from = offset;
        t.offset_to = offset;
        t.position = position;
        t.position_length = 1;
        self.len += 1;
    }
    fn as_mut_slice(&mut self) -> &mut [Token] {
        &mut self.items[..self.len]
    }
}

pub struct VecTokenStream<'a> {
    tokens: &'a mut [Token],
    next: usize,
    /// What `token()` shows before the first `advance()` or past the end.
    none: Token,
}

impl TokenStream for VecTokenStream<'_> {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }
    fn token(&self) -> &Token {
        self.next.checked_sub(1).and_then(|i| self.tokens.get(i)).unwrap_or(&self.none)
    }
    fn token_mut(&mut self) -> &mut Token {
        match self.next.checked_sub(1) {
            Some(i) if i < self.tokens.len() => &mut self.tokens[i],
            _ => &mut self.none,
        }
    }
}

/// Holds the tokens of the text being tokenized (tantivy's tokenizers are per indexing thread).
#[derive(Clone)]
pub struct Computed {
    f: FnTokenizer,
    tokens: Tokens,
}

impl Tokenizer for Computed {
    type TokenStream<'a> = VecTokenStream<'a>;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecTokenStream<'a> {
        self.tokens.clear();
        (self.f.0)(text, &mut self.tokens);
        VecTokenStream { tokens: self.tokens.as_mut_slice(), next: 0, none: Token::default() }
    }
}

/// Overlapping two-character grams of each run of text between breaks, lower-cased.
fn bigram_tokens(text: &str, out: &mut Tokens) {
    let mut run: Vec<(usize, char)> = Vec::with_capacity(32);
    let flush = |run: &mut Vec<(usize, char)>, out: &mut Tokens| {
        for w in run.windows(2) {
            out.push_with(w[0].0, |g| {
                for (_, c) in w {
                    if c.is_ascii() { g.push(c.to_ascii_lowercase()) } else { g.extend(c.to_lowercase()) }
                }
            });
        }
        run.clear();
    };
    for (i, c) in text.char_indices() {
        if is_break(c) {
            flush(&mut run, out);
        } else {
            run.push((i, c));
        }
    }
    flush(&mut run, out);
}

/// The bigram analyzer.
pub fn bigram_analyzer() -> TextAnalyzer {
    TextAnalyzer::from(Computed { f: FnTokenizer(bigram_tokens), tokens: Tokens::default() })
}

/// The distinct bigrams of `text`.
pub fn bigrams(text: &str) -> Vec<String> {
    let mut tokens = Tokens::default();
    bigram_tokens(text, &mut tokens);
    let mut out: Vec<String> = Vec::new();
    for t in tokens.as_mut_slice() {
        if !out.contains(&t.text) {
            out.push(std::mem::take(&mut t.text));
        }
    }
    out
}

/// Longest full-pinyin token (letters): about eight syllables.
pub const MAX_PINYIN_LETTERS: usize = 30;
/// Longest initials token (characters).
pub const MAX_INITIALS: usize = 8;

/// The runs of Han characters of `text` as (byte offset, full pinyin, initial) per character.
fn han_runs(text: &str) -> Vec<Vec<(usize, &'static str, &'static str)>> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    for (i, c) in text.char_indices() {
        match c.to_pinyin() {
            Some(p) => run.push((i, p.plain(), p.first_letter())),
            None => {
                if !run.is_empty() {
                    runs.push(std::mem::take(&mut run));
                }
            }
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

fn pinyin_tokens(text: &str, out: &mut Tokens) {
    for run in han_runs(text) {
        for s in 0..run.len() {
            out.push_with(run[s].0, |full| {
                for (_, p, _) in &run[s..] {
                    if full.len() >= MAX_PINYIN_LETTERS {
                        break;
                    }
                    // ü is typed as v without an input method (lv for 绿, nv for 女).
                    full.extend(p.chars().map(|c| if c == 'ü' { 'v' } else { c }));
                }
            });
        }
    }
}

fn initials_tokens(text: &str, out: &mut Tokens) {
    for run in han_runs(text) {
        for s in 0..run.len().saturating_sub(1) {
            out.push_with(run[s].0, |init| init.extend(run[s..].iter().take(MAX_INITIALS).map(|(_, _, i)| *i)));
        }
    }
}

/// The full-pinyin analyzer (tokens are searched by prefix).
pub fn pinyin_analyzer() -> TextAnalyzer {
    TextAnalyzer::from(Computed { f: FnTokenizer(pinyin_tokens), tokens: Tokens::default() })
}

/// The initials analyzer (tokens are searched by prefix).
pub fn initials_analyzer() -> TextAnalyzer {
    TextAnalyzer::from(Computed { f: FnTokenizer(initials_tokens), tokens: Tokens::default() })
}

/// Whether a query word looks like pinyin typed without an input method: ASCII letters only.
pub fn is_pinyin_like(word: &str) -> bool {
    word.len() >= 2 && word.bytes().all(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(mut a: TextAnalyzer, text: &str) -> Vec<String> {
        let mut s = a.token_stream(text);
        let mut out = Vec::new();
        while s.advance() {
            out.push(s.token().text.clone());
        }
        out
    }

    #[test]
    fn words_are_segmented_and_function_words_dropped() {
        let t = terms("一元二次方程 的解法");
        assert!(t.contains(&"方程".to_string()), "{t:?}");
        assert!(t.contains(&"一元二次方程".to_string()), "{t:?}");
        assert!(!t.iter().any(|s| s.trim().is_empty() || s == "的"), "{t:?}");
        assert_eq!(terms("Python 编程"), ["python", "编程"]);
        assert!(terms("ÉCOLE Ω").iter().all(|t| t.chars().all(|c| !c.is_uppercase())), "{:?}", terms("ÉCOLE Ω"));
    }

    #[test]
    fn bigrams_stay_inside_runs() {
        assert_eq!(bigrams("勾股定理，证明"), ["勾股", "股定", "定理", "证明"]);
        assert_eq!(tokens(bigram_analyzer(), "AB 中"), ["ab"]);
        assert!(tokens(bigram_analyzer(), "").is_empty());
    }

    #[test]
    fn pinyin_of_every_suffix_and_initials() {
        let full = tokens(pinyin_analyzer(), "牛顿第一定律");
        assert_eq!(full[0], "niudundiyidinglv");
        assert!(full.contains(&"dinglv".to_string()), "{full:?}");
        let init = tokens(initials_analyzer(), "牛顿第一定律 一元二次");
        assert_eq!(init[0], "nddydl");
        assert!(init.contains(&"yyec".to_string()), "{init:?}");
        assert!(tokens(pinyin_analyzer(), "一元二次方程").iter().any(|t| t.starts_with("yiyuanerci")));
        // Long runs stop near the limit; non-Han text gives nothing.
        assert!(tokens(pinyin_analyzer(), &"长".repeat(50)).iter().all(|t| t.len() <= MAX_PINYIN_LETTERS + 6));
        assert!(tokens(pinyin_analyzer(), "abc 123").is_empty());
        assert!(is_pinyin_like("niudun") && !is_pinyin_like("n") && !is_pinyin_like("牛顿") && !is_pinyin_like("3d"));
    }
}
