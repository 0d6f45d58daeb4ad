//! The JSONPath subset CustomResourceDefinitions use: printer columns (`.spec.image`,
//! `.status.conditions[0].type`, `.items[*].name`, `.metadata.labels['app.kubernetes.io/name']`)
//! and the scale subresource's simple field paths.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath(Vec<Step>);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum JsonPathError {
    #[error("must start with '.'")]
    NoLeadingDot,
    #[error("unterminated '[' at byte {0}")]
    Unterminated(usize),
    #[error("unsupported subscript [{0}]")]
    Subscript(String),
    #[error("empty field name at byte {0}")]
    EmptyField(usize),
}

impl JsonPath {
    /// Parses `.a.b[0]['c.d'][*]` (also wrapped in `{...}`, as kubectl writes them).
    pub fn parse(text: &str) -> Result<Self, JsonPathError> {
        let text = text.trim();
        let text = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(text);
        if !text.starts_with('.') && !text.starts_with('[') {
            return Err(JsonPathError::NoLeadingDot);
        }
        let bytes = text.as_bytes();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'.' => {
                    let start = i + 1;
                    let end = text[start..].find(['.', '[']).map_or(text.len(), |e| start + e);
                    if end == start {
                        return Err(JsonPathError::EmptyField(start));
                    }
                    steps.push(Step::Field(text[start..end].to_owned()));
                    i = end;
                }
                b'[' => {
                    let close =
                        text[i..].find(']').map(|e| i + e).ok_or(JsonPathError::Unterminated(i))?;
                    let inner = text[i + 1..close].trim();
                    let quoted = inner
                        .strip_prefix('\'')
                        .and_then(|s| s.strip_suffix('\''))
                        .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
                    steps.push(match (inner, quoted) {
                        (_, Some(q)) => Step::Field(q.to_owned()),
                        ("*", None) => Step::All,
                        (n, None) => Step::Index(
                            n.parse().map_err(|_| JsonPathError::Subscript(n.to_owned()))?,
                        ),
                    });
                    i = close + 1;
                }
                _ => return Err(JsonPathError::Subscript(text[i..].to_owned())),
            }
        }
        Ok(Self(steps))
    }

    /// Every value the path reaches in `v`.
    pub fn find<'a>(&self, v: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![v];
        for step in &self.0 {
            current = current
                .into_iter()
                .flat_map(|c| -> Vec<&Value> {
                    match step {
                        Step::Field(f) => c.get(f).into_iter().collect(),
                        Step::Index(n) => c.get(*n).into_iter().collect(),
                        Step::All => match c {
                            Value::Array(a) => a.iter().collect(),
                            Value::Object(o) => o.values().collect(),
                            _ => Vec::new(),
                        },
                    }
                })
                .collect();
        }
        current
    }

    /// Sets the value at a path of plain fields, creating objects on the way.
    pub fn set(&self, v: &mut Value, value: Value) -> bool {
        let mut at = v;
        for step in &self.0 {
            let Step::Field(f) = step else { return false };
            if at.is_null() {
                *at = Value::Object(Default::default());
            }
            let Some(o) = at.as_object_mut() else { return false };
            at = o.entry(f.clone()).or_insert(Value::Null);
        }
        *at = value;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_find_and_set() {
        let obj =
            json!({"spec": {"a": [{"b": 1}, {"b": 2}]}, "metadata": {"labels": {"x.y/z": "v"}}});
        let p = JsonPath::parse(".spec.a[*].b").unwrap();
        assert_eq!(p.find(&obj), [&json!(1), &json!(2)]);
        assert_eq!(JsonPath::parse("{.spec.a[1].b}").unwrap().find(&obj), [&json!(2)]);
        let l = JsonPath::parse(".metadata.labels['x.y/z']").unwrap();
        assert_eq!(l.find(&obj), [&json!("v")]);
        assert!(JsonPath::parse("spec").is_err());
        assert!(JsonPath::parse(".spec[").is_err());
        let mut o = json!({});
        assert!(JsonPath::parse(".spec.replicas").unwrap().set(&mut o, json!(3)));
        assert_eq!(o, json!({"spec": {"replicas": 3}}));
    }
}
