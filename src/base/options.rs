//! Option schemas: every behavior, toxic and protocol describes its options once, and that one
//! description feeds the CLI flags, the ini reader, both HTTP APIs, Python and the docs.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// The type of one option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OptionKind {
    Bool,
    Int,
    Float,
    Str,
}

impl OptionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OptionKind::Bool => "bool",
            OptionKind::Int => "int",
            OptionKind::Float => "float",
            OptionKind::Str => "str",
        }
    }

    /// Parses a value given as text (a flag, an ini value, a Python string option).
    pub fn parse(self, text: &str) -> Result<Value, String> {
        let t = text.trim();
        match self {
            OptionKind::Bool => match t.to_ascii_lowercase().as_str() {
                "1" | "y" | "yes" | "on" | "true" | "t" => Ok(Value::Bool(true)),
                "0" | "n" | "no" | "off" | "false" | "f" | "" => Ok(Value::Bool(false)),
                _ => Err(format!("'{text}' is not a boolean")),
            },
            OptionKind::Int => t
                .parse::<i64>()
                .map(Value::Int)
                .map_err(|_| format!("'{text}' is not an integer")),
            OptionKind::Float => t
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Value::Float)
                .ok_or_else(|| format!("'{text}' is not a number")),
            OptionKind::Str => Ok(Value::Str(unquote(text).to_string())),
        }
    }

    /// Converts a JSON value (HTTP APIs). Strings are accepted for every kind, as the original
    /// API did; integers reject fractions.
    pub fn from_json(self, v: &serde_json::Value) -> Result<Value, String> {
        use serde_json::Value as J;
        match (self, v) {
            (_, J::String(s)) => self.parse(s),
            (OptionKind::Bool, J::Bool(b)) => Ok(Value::Bool(*b)),
            (OptionKind::Bool, J::Number(n)) if n.as_i64().is_some() => {
                Ok(Value::Bool(n.as_i64() != Some(0)))
            }
            (OptionKind::Int, J::Number(n)) => n
                .as_i64()
                .map(Value::Int)
                .ok_or_else(|| format!("{n} is not an integer")),
            (OptionKind::Float, J::Number(n)) => n
                .as_f64()
                .map(Value::Float)
                .ok_or_else(|| format!("{n} is not a number")),
            (OptionKind::Str, J::Number(n)) => Ok(Value::Str(n.to_string())),
            (OptionKind::Str, J::Bool(b)) => Ok(Value::Str(b.to_string())),
            (kind, other) => Err(format!("{other} is not a valid {}", kind.as_str())),
        }
    }
}

fn unquote(s: &str) -> &str {
    let t = s.trim();
    if t.len() >= 2
        && ((t.starts_with('"') && t.ends_with('"')) || (t.starts_with('\'') && t.ends_with('\'')))
    {
        &t[1..t.len() - 1]
    } else {
        t
    }
}

/// A typed option value.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Value {
    pub fn as_bool(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => OptionKind::Bool.parse(s) == Ok(Value::Bool(true)),
        }
    }
    pub fn as_i64(&self) -> i64 {
        match self {
            Value::Bool(b) => *b as i64,
            Value::Int(i) => *i,
            Value::Float(f) => *f as i64,
            Value::Str(s) => s.trim().parse().unwrap_or(0),
        }
    }
    pub fn as_f64(&self) -> f64 {
        match self {
            Value::Bool(b) => *b as i64 as f64,
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            Value::Str(s) => s.trim().parse().unwrap_or(0.0),
        }
    }
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s}"),
        }
    }
}

/// The description of one option: name, type, default and a line of help.
#[derive(Clone, Debug, Serialize)]
pub struct OptionSpec {
    pub name: String,
    pub kind: OptionKind,
    pub default: Value,
    pub help: String,
}

impl OptionSpec {
    pub fn new(name: &str, kind: OptionKind, default: Value, help: &str) -> Self {
        OptionSpec {
            name: name.to_string(),
            kind,
            default,
            help: help.to_string(),
        }
    }
    pub fn bool(name: &str, default: bool, help: &str) -> Self {
        Self::new(name, OptionKind::Bool, Value::Bool(default), help)
    }
    pub fn int(name: &str, default: i64, help: &str) -> Self {
        Self::new(name, OptionKind::Int, Value::Int(default), help)
    }
    pub fn float(name: &str, default: f64, help: &str) -> Self {
        Self::new(name, OptionKind::Float, Value::Float(default), help)
    }
    pub fn str(name: &str, default: &str, help: &str) -> Self {
        Self::new(name, OptionKind::Str, Value::Str(default.to_string()), help)
    }
    /// The flag's name: `--{prefix}-{name}` with underscores as dashes.
    pub fn flag(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.name.replace('_', "-"))
    }
}

/// Option values of one behavior, toxic or protocol instance: the schema's defaults overlaid
/// with what the user gave. Every name in the schema has a value.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Options(pub BTreeMap<String, Value>);

impl Options {
    /// The defaults of a schema.
    pub fn defaults(schema: &[OptionSpec]) -> Self {
        Options(
            schema
                .iter()
                .map(|s| (s.name.clone(), s.default.clone()))
                .collect(),
        )
    }
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
    pub fn bool(&self, name: &str) -> bool {
        self.get(name).map(Value::as_bool).unwrap_or(false)
    }
    pub fn int(&self, name: &str) -> i64 {
        self.get(name).map(Value::as_i64).unwrap_or(0)
    }
    pub fn float(&self, name: &str) -> f64 {
        self.get(name).map(Value::as_f64).unwrap_or(0.0)
    }
    pub fn string(&self, name: &str) -> String {
        self.get(name).map(|v| v.to_string()).unwrap_or_default()
    }
    pub fn set(&mut self, name: &str, value: Value) {
        self.0.insert(name.to_string(), value);
    }
    /// Sets an option given as text, checking its name and type against the schema.
    pub fn set_text(
        &mut self,
        schema: &[OptionSpec],
        name: &str,
        text: &str,
    ) -> Result<(), String> {
        let spec = find(schema, name)?;
        let v = spec
            .kind
            .parse(text)
            .map_err(|e| format!("option '{}': {e}", spec.name))?;
        self.0.insert(spec.name.clone(), v);
        Ok(())
    }
    /// Sets an option given as JSON, checking its name and type against the schema.
    pub fn set_json(
        &mut self,
        schema: &[OptionSpec],
        name: &str,
        value: &serde_json::Value,
    ) -> Result<(), String> {
        let spec = find(schema, name)?;
        let v = spec
            .kind
            .from_json(value)
            .map_err(|e| format!("option '{}': {e}", spec.name))?;
        self.0.insert(spec.name.clone(), v);
        Ok(())
    }
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }
}

fn find<'a>(schema: &'a [OptionSpec], name: &str) -> Result<&'a OptionSpec, String> {
    let wanted = name.replace('-', "_");
    schema.iter().find(|s| s.name == wanted).ok_or_else(|| {
        let known: Vec<&str> = schema.iter().map(|s| s.name.as_str()).collect();
        if known.is_empty() {
            format!("unknown option '{name}' (this one takes no options)")
        } else {
            format!("unknown option '{name}' (known: {})", known.join(", "))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_accept_the_original_spellings() {
        for t in ["y", "yes", "1", "on", "True", "TRUE"] {
            assert_eq!(OptionKind::Bool.parse(t), Ok(Value::Bool(true)), "{t}");
        }
        for t in ["n", "no", "0", "off", "false"] {
            assert_eq!(OptionKind::Bool.parse(t), Ok(Value::Bool(false)), "{t}");
        }
        assert!(OptionKind::Bool.parse("maybe").is_err());
    }

    #[test]
    fn numbers_and_strings() {
        assert_eq!(OptionKind::Int.parse(" 12 "), Ok(Value::Int(12)));
        assert!(OptionKind::Int.parse("1.5").is_err());
        assert_eq!(OptionKind::Float.parse("0.25"), Ok(Value::Float(0.25)));
        assert!(OptionKind::Float.parse("nan").is_err());
        assert_eq!(
            OptionKind::Str.parse("\"a b\""),
            Ok(Value::Str("a b".into()))
        );
        assert!(OptionKind::Int.from_json(&serde_json::json!(1.5)).is_err());
        assert_eq!(
            OptionKind::Float.from_json(&serde_json::json!(2)),
            Ok(Value::Float(2.0))
        );
    }

    #[test]
    fn set_checks_names_and_dashes() {
        let schema = vec![OptionSpec::float("sleep", 1.0, "seconds")];
        let mut o = Options::defaults(&schema);
        o.set_text(&schema, "sleep", "2").unwrap();
        assert_eq!(o.float("sleep"), 2.0);
        let e = o.set_text(&schema, "slep", "2").unwrap_err();
        assert!(e.contains("known: sleep"), "{e}");
    }
}
