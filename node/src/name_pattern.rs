//! File-name patterns of recordings (`import.name_pattern`): lesson fields read from names such
//! as `八年级_数学_王芳_勾股定理.mp4`. Pure; the config checks a pattern with it, the import folder
//! applies it.

use crate::lessons::ImportMeta;

/// A file-name pattern such as `{grade}_{subject}_{teacher}_{title}`: fields in braces
/// (`title`, `teacher`, `grade`, `subject`, `knowledge`, or `_` to skip a part) separated by
/// literal text.
#[derive(Debug, Clone, PartialEq)]
pub struct NamePattern {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Field(String),
}

const FIELDS: [&str; 6] = ["title", "teacher", "grade", "subject", "knowledge", "_"];

impl std::str::FromStr for NamePattern {
    type Err = String;
    fn from_str(p: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = p;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest.find('}').ok_or_else(|| format!("{p:?}: a '{{' is not closed"))?;
                    let name = &rest[1..end];
                    if !FIELDS.contains(&name) {
                        return Err(format!("{p:?}: unknown field {{{name}}}; use {}", FIELDS.map(|f| format!("{{{f}}}")).join(", ")));
                    }
                    if matches!(parts.last(), Some(Part::Field(_))) {
                        return Err(format!("{p:?}: two fields need text between them to tell them apart"));
                    }
                    parts.push(Part::Field(name.to_string()));
                    rest = &rest[end + 1..];
                }
                Some(i) => {
                    parts.push(Part::Literal(rest[..i].to_string()));
                    rest = &rest[i..];
                }
                None => {
                    parts.push(Part::Literal(rest.to_string()));
                    rest = "";
                }
            }
        }
        if !parts.iter().any(|p| matches!(p, Part::Field(_))) {
            return Err(format!("{p:?}: the pattern has no field"));
        }
        Ok(NamePattern { parts })
    }
}

impl NamePattern {
    /// The fields of a file name (without its extension), or `None` if it does not match.
    pub fn parse(&self, stem: &str) -> Option<ImportMeta> {
        let mut meta = ImportMeta::default();
        let mut rest = stem;
        let mut i = 0;
        while i < self.parts.len() {
            match &self.parts[i] {
                Part::Literal(l) => rest = rest.strip_prefix(l.as_str())?,
                Part::Field(name) => {
                    let value = match self.parts.get(i + 1) {
                        Some(Part::Literal(next)) => {
                            let at = rest.find(next.as_str())?;
                            let v = &rest[..at];
                            rest = &rest[at..];
                            v
                        }
                        _ => std::mem::take(&mut rest),
                    };
                    let value = value.trim();
                    if value.is_empty() {
                        return None;
                    }
                    let v = Some(value.to_string());
                    match name.as_str() {
                        "title" => meta.title = v,
                        "teacher" => meta.teacher = v,
                        "grade" => meta.grade = v,
                        "subject" => meta.subject = v,
                        "knowledge" => meta.knowledge_points = value.split(['、', ',', '，']).map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect(),
                        _ => {}
                    }
                }
            }
            i += 1;
        }
        rest.is_empty().then_some(meta)
    }
}
