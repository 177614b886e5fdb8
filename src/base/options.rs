//! Option schemas: every behavior, toxic and protocol describes its options once, and that one
//! description feeds the CLI flags, the ini reader, both HTTP APIs, Python and the docs. A
//! built-in one declares them with [`options!`]: a struct that is also its schema, so that its
//! code reads typed fields and never a name; a Python one gives its schema at run time and
//! reads [`Options`] by name.

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
    /// The flag's name: `--{prefix}-{name}` with underscores as dashes.
    pub fn flag(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.name.replace('_', "-"))
    }
}

/// A Rust type an option may have: its [`OptionKind`], and its conversions to and from a
/// [`Value`].
pub trait OptionType: Sized {
    const KIND: OptionKind;
    fn to_value(&self) -> Value;
    /// Any [`Value`] converts, as the kind's parser would take its text.
    fn read(value: &Value) -> Self;
}

impl OptionType for bool {
    const KIND: OptionKind = OptionKind::Bool;
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
    fn read(value: &Value) -> Self {
        value.as_bool()
    }
}

impl OptionType for i64 {
    const KIND: OptionKind = OptionKind::Int;
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
    fn read(value: &Value) -> Self {
        value.as_i64()
    }
}

impl OptionType for f64 {
    const KIND: OptionKind = OptionKind::Float;
    fn to_value(&self) -> Value {
        Value::Float(*self)
    }
    fn read(value: &Value) -> Self {
        value.as_f64()
    }
}

impl OptionType for String {
    const KIND: OptionKind = OptionKind::Str;
    fn to_value(&self) -> Value {
        Value::Str(self.clone())
    }
    fn read(value: &Value) -> Self {
        value.to_string()
    }
}

/// The options of a kind of behavior, toxic or protocol as a struct, declared with
/// `options!`: its schema, and its values read from (or written to) [`Options`] by the names
/// of that schema. No code outside the declaration spells an option's name.
pub trait OptionSet: Default + for<'a> From<&'a Options> + Send + 'static {
    /// Names, kinds, defaults and help texts, in the order declared.
    fn schema() -> Vec<OptionSpec>;
    /// The values by name.
    fn to_options(&self) -> Options;
}

/// Reads one option for [`options!`]: its value in `options`, else `default`.
pub fn read<T: OptionType>(options: &Options, name: &str, default: impl FnOnce() -> T) -> T {
    options.get(name).map_or_else(default, T::read)
}

/// Declares the options of a kind of behavior, toxic or protocol, once: a struct with one field
/// per option (`name: type = default,`, its doc comment the option's help text, one line in
/// `--help`), and its [`OptionSet`]: the schema, `Default`, `From<&Options>` (the reader) and
/// `to_options` (the writer). The types are `bool`, `i64`, `f64` and `String`. A last
/// `..field: OtherOptions` takes another declaration's options after these (`transient` has
/// `error`'s).
///
/// ```ignore
/// options! {
///     /// `latency`'s options.
///     pub struct LatencyOptions {
///         /// delay in milliseconds
///         latency: i64 = 0,
///         /// random variation in milliseconds, ±
///         jitter: i64 = 0,
///     }
/// }
/// ```
macro_rules! options {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[doc = $help:literal])+ $field:ident : $ty:ty = $default:expr, )*
            $( ..$more:ident : $more_ty:ty $(,)? )?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        $vis struct $name {
            $( $(#[doc = $help])+ pub $field: $ty, )*
            $( pub $more: $more_ty, )?
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $( $field: $default, )*
                    $( $more: <$more_ty>::default(), )?
                }
            }
        }

        impl $crate::base::options::OptionSet for $name {
            fn schema() -> Vec<$crate::base::options::OptionSpec> {
                #[allow(unused_mut)]
                let mut schema = vec![$(
                    $crate::base::options::OptionSpec::new(
                        stringify!($field),
                        <$ty as $crate::base::options::OptionType>::KIND,
                        <$ty as $crate::base::options::OptionType>::to_value(&$default),
                        concat!($($help),+).trim(),
                    ),
                )*];
                $( schema.extend(<$more_ty as $crate::base::options::OptionSet>::schema()); )?
                schema
            }

            #[allow(unused_mut)]
            fn to_options(&self) -> $crate::base::options::Options {
                let mut options = $crate::base::options::Options::default();
                $( options.set(
                    stringify!($field),
                    $crate::base::options::OptionType::to_value(&self.$field),
                ); )*
                $( options.0.extend($crate::base::options::OptionSet::to_options(&self.$more).0); )?
                options
            }
        }

        impl From<&$crate::base::options::Options> for $name {
            #[allow(unused_variables)]
            fn from(options: &$crate::base::options::Options) -> Self {
                $name {
                    $( $field: $crate::base::options::read(options, stringify!($field), || $default), )*
                    $( $more: <$more_ty>::from(options), )?
                }
            }
        }
    };
}

pub(crate) use options;

options! {
    /// The options of a kind that has none.
    pub struct NoOptions {}
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
    /// For tests: a value read by name (the engine reads options through an [`OptionSet`]).
    #[cfg(test)]
    pub fn bool(&self, name: &str) -> bool {
        self.get(name).is_some_and(Value::as_bool)
    }
    /// For tests, as [`Options::bool`].
    #[cfg(test)]
    pub fn float(&self, name: &str) -> f64 {
        self.get(name).map_or(0.0, Value::as_f64)
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

    options! {
        /// For the tests.
        struct Inner {
            /// a flag
            flag: bool = true,
        }
    }

    options! {
        /// For the tests.
        struct Outer {
            /// a count, its help on
            /// two lines
            count: i64 = 3,
            /// a rate
            rate: f64 = 0.5,
            /// a label
            label: String = "x".to_string(),
            ..inner: Inner,
        }
    }

    #[test]
    fn a_declaration_gives_the_schema_the_reader_and_the_writer() {
        let schema = Outer::schema();
        let specs: Vec<_> = schema
            .iter()
            .map(|s| (s.name.as_str(), s.kind, s.default.clone(), s.help.as_str()))
            .collect();
        assert_eq!(
            specs,
            [
                (
                    "count",
                    OptionKind::Int,
                    Value::Int(3),
                    "a count, its help on two lines"
                ),
                ("rate", OptionKind::Float, Value::Float(0.5), "a rate"),
                ("label", OptionKind::Str, Value::Str("x".into()), "a label"),
                ("flag", OptionKind::Bool, Value::Bool(true), "a flag"),
            ]
        );
        let defaults = Options::defaults(&schema);
        assert_eq!(Outer::from(&defaults), Outer::default());
        assert_eq!(Outer::default().to_options(), defaults);
        // A value missing reads as its default.
        assert_eq!(Outer::from(&Options::default()), Outer::default());
        let mut o = defaults.clone();
        o.set_text(&schema, "count", "7").unwrap();
        o.set_text(&schema, "flag", "no").unwrap();
        o.set_text(&schema, "label", "'a b'").unwrap();
        let read = Outer::from(&o);
        assert_eq!((read.count, read.inner.flag), (7, false));
        assert_eq!(read.label, "a b");
        assert_eq!(read.to_options(), o);
        assert!(NoOptions::schema().is_empty());
    }

    #[test]
    fn set_checks_names_and_dashes() {
        let schema = vec![OptionSpec::new(
            "sleep",
            OptionKind::Float,
            Value::Float(1.0),
            "seconds",
        )];
        let mut o = Options::defaults(&schema);
        o.set_text(&schema, "sleep", "2").unwrap();
        assert_eq!(o.float("sleep"), 2.0);
        let e = o.set_text(&schema, "slep", "2").unwrap_err();
        assert!(e.contains("known: sleep"), "{e}");
    }
}
