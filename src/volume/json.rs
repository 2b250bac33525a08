//! A JSON document tree that keeps every key, in order, duplicates included, so the decoder
//! can refuse ambiguity (two `source` keys, or `source` and `Source`) instead of silently
//! taking one of them as `serde_json::Value` would. Depth is bounded by `serde_json`'s
//! recursion limit (128), so hostile nesting is an error, not a stack overflow.
//!
//! Keys and strings borrow from the input when they hold no escape (the common case), so
//! decoding a volume copies each string once, into the wire struct.
//!
//! The volume's own objects are not kept as trees: [`Object`] matches each key to a known
//! field while parsing (Go's folding, [`folds_to`]) and skips the values of unknown members
//! without building anything, so a large or deeply nested unknown field costs no memory.

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

/// The most known fields of any one object.
pub(crate) const MAX_FIELDS: usize = 10;

/// A field the decoder knows: its JSON name (Go's tag) and, for a nested object with known
/// fields of its own, those fields.
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) nested: Option<&'static [Field]>,
}

impl Field {
    /// A field whose value is kept as a [`Json`] value.
    pub(crate) const fn value(name: &'static str) -> Self {
        Self { name, nested: None }
    }

    /// A field whose value is an object with known fields.
    pub(crate) const fn object(name: &'static str, fields: &'static [Field]) -> Self {
        Self {
            name,
            nested: Some(fields),
        }
    }
}

/// Whether a JSON key names the field `name` (ASCII lower case) under Go's folding: ASCII
/// letters in either case, plus the only non-ASCII letters that fold onto ASCII ones, U+017F
/// (→ s) and U+212A (→ k). Allocates nothing. `key_is_ascii` is `key.is_ascii()`, computed
/// once per key by the caller.
pub(crate) fn folds_to(key: &str, key_is_ascii: bool, name: &str) -> bool {
    if key.len() == name.len() {
        // A folding non-ASCII letter is longer than the ASCII one it folds to, so a key of
        // the name's length matches only in plain ASCII case-insensitivity.
        return key.eq_ignore_ascii_case(name);
    }
    if key_is_ascii {
        return false;
    }
    let mut chars = key.chars();
    for want in name.chars() {
        let got = match chars.next() {
            Some('\u{017F}') => 's',
            Some('\u{212A}') => 'k',
            Some(c) => c.to_ascii_lowercase(),
            None => return false,
        };
        if got != want {
            return false;
        }
    }
    chars.next().is_none()
}

/// The value of a known field.
#[derive(Debug)]
pub(crate) enum Member<'a> {
    /// A plain value.
    Value(Json<'a>),
    /// An object with known fields of its own.
    Object(Box<Object<'a>>),
}

/// A JSON value where an object with known fields is expected.
// `Members` is large, but each object's lives on the stack while it is decoded; boxing it
// would cost an allocation per object.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Object<'a> {
    /// `null`: Go's empty value.
    Null,
    /// Not an object: the kind of value it is, for the error.
    Other(&'static str),
    /// An object: the known fields' values (in the order of the field list), and the first
    /// field given more than once (in any spelling), if one was.
    Members {
        values: [Option<Member<'a>>; MAX_FIELDS],
        duplicate: Option<usize>,
    },
}

impl<'a> Object<'a> {
    /// Parses a whole JSON text where an object with `fields` is expected.
    pub(crate) fn parse(text: &'a str, fields: &'static [Field]) -> serde_json::Result<Self> {
        let mut de = serde_json::Deserializer::from_str(text);
        let object = ObjectSeed(fields).deserialize(&mut de)?;
        de.end()?;
        Ok(object)
    }
}

/// Parses an [`Object`] with the given known fields.
struct ObjectSeed(&'static [Field]);

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = Object<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed {
    type Value = Object<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Object<'de>, E> {
        Ok(Object::Null)
    }
    fn visit_none<E>(self) -> Result<Object<'de>, E> {
        Ok(Object::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Object<'de>, E> {
        Ok(Object::Other("a boolean"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Object<'de>, E> {
        Ok(Object::Other("a number"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Object<'de>, E> {
        Ok(Object::Other("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Object<'de>, E> {
        Ok(Object::Other("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Object<'de>, E> {
        Ok(Object::Other("a string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Object<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Object::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'de>, A::Error> {
        let mut values = [const { None }; MAX_FIELDS];
        let mut duplicate = None;
        while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
            // The exact name (what Go's encoder writes) first; then Go's folding.
            let exact = self.0.iter().position(|f| f.name == key);
            let found = exact.or_else(|| {
                let ascii = key.is_ascii();
                self.0.iter().position(|f| folds_to(&key, ascii, f.name))
            });
            let Some((i, field)) = found.and_then(|i| Some((i, self.0.get(i)?))) else {
                // Unknown: parsed (it must be valid JSON) but not kept.
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let member = match field.nested {
                Some(fields) => Member::Object(Box::new(map.next_value_seed(ObjectSeed(fields))?)),
                None => Member::Value(map.next_value()?),
            };
            match values.get_mut(i) {
                Some(slot @ None) => *slot = Some(member),
                _ => {
                    duplicate.get_or_insert(i);
                }
            }
        }
        Ok(Object::Members { values, duplicate })
    }
}

/// A JSON value, borrowing its strings from the input where it can.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Members in document order, duplicates kept.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl Json<'_> {
    /// A short name of the value's kind, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

/// A string that borrows from the input when it can (serde's own `Cow` never borrows).
struct Str<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Str<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'de>, E> {
        Ok(Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Str<'de>, E> {
        Ok(Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Str<'de>, E> {
        Ok(Str(Cow::Owned(v)))
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json<'de>, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some((Str(k), v)) = map.next_entry::<Str<'de>, Json<'de>>()? {
            members.push((k, v));
        }
        Ok(Json::Object(members))
    }
}

/// Deepest nesting of arrays and objects a volume may contain. The contract's deepest value
/// is two levels (`direct_volume.metadata`); unknown members are skipped without building
/// them, so without this bound a host could send arbitrarily deep junk that is accepted.
pub(crate) const MAX_DEPTH: usize = 32;

/// Whether `text` nests arrays and objects deeper than `limit`.
pub(crate) fn too_deep(text: &str, limit: usize) -> bool {
    // Nesting cannot exceed the number of opening brackets, and counting them vectorises
    // where the exact scan does not (that scan alone cost ~15% of the decode benchmark): a
    // real volume has a handful, so the exact scan only runs on unusual input.
    // `[` (0x5B) and `{` (0x7B) differ only in 0x20; counts are summed in `u8` lanes per
    // 255-byte chunk (cannot overflow), which LLVM turns into 16-byte vector code.
    let opening: usize = text
        .as_bytes()
        .chunks(255)
        .map(|chunk| {
            let n = chunk
                .iter()
                .fold(0u8, |n, &b| n.wrapping_add(u8::from(b | 0x20 == b'{')));
            usize::from(n)
        })
        .sum();
    opening > limit && nesting_depth(text, limit) > limit
}

/// The deepest nesting of `[`/`{` in `text` (outside strings), stopping early past `limit`.
pub(crate) fn nesting_depth(text: &str, limit: usize) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    max = depth;
                    if max > limit {
                        return max;
                    }
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod depth_tests {
    use super::nesting_depth;

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(nesting_depth(r#"{"a":"[[[{{{","b":{"c":[1]}}"#, 100), 3);
        assert_eq!(nesting_depth(r#"{"a":"\"[[["}"#, 100), 1);
        assert_eq!(nesting_depth(&"[".repeat(1000), 32), 33);
        assert_eq!(nesting_depth("42", 32), 0);
    }

    #[test]
    fn too_deep_counts_only_real_nesting() {
        use super::too_deep;
        assert!(!too_deep(&"[".repeat(32), 32));
        assert!(too_deep(&"[".repeat(33), 32));
        // Many brackets, little nesting: inside strings, or side by side.
        assert!(!too_deep(&format!("{{\"a\":\"{}\"}}", "[".repeat(100)), 32));
        assert!(!too_deep(&format!("[{}1]", "[],".repeat(100)), 32));
    }
}
