//! Rust types to terms and back with serde: [`to_term`] and [`from_term`], in the shapes
//! the [module docs](super#rust-types-and-serde) list.

use super::{
    atom, binary, boolean, charlist, int, list, map, tuple, BigInteger, Float, Match, Term,
};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, Serialize};
use std::fmt;

/// Why a value could not become a term, or a term the Rust type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError(String);

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConvertError {}

impl ser::Error for ConvertError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ConvertError(msg.to_string())
    }
}

impl de::Error for ConvertError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ConvertError(msg.to_string())
    }
}

/// A Rust value as a term (see [the shapes](mod@crate::term#rust-types-and-serde)).
pub fn to_term<T: Serialize + ?Sized>(value: &T) -> Result<Term, ConvertError> {
    value.serialize(Serializer { mode: Mode::Plain })
}

/// A term as a Rust value (see [the shapes](mod@crate::term#rust-types-and-serde)).
pub fn from_term<'de, T: serde::Deserialize<'de>>(term: &'de Term) -> Result<T, ConvertError> {
    T::deserialize(Deserializer { term })
}

/// The tag a variant of `std::result::Result` is written with: `Ok(v)` is `{:ok, v}` and
/// `Err(e)` `{:error, e}`, as Elixir writes them. (serde names the enum `Result`: an
/// enum of the program's own called `Result` with variants `Ok` and `Err` is taken for
/// it, and written the same.)
fn result_tag(name: &str, variant: &str) -> Option<&'static str> {
    match (name, variant) {
        ("Result", "Ok") => Some("ok"),
        ("Result", "Err") => Some("error"),
        _ => None,
    }
}

/// The variant of `std::result::Result` an Elixir tag stands for (`:ok`, `:error`).
fn result_variant(tag: &str) -> Option<&'static str> {
    match tag {
        "ok" => Some("Ok"),
        "error" => Some("Err"),
        _ => None,
    }
}

// Names of the newtype structs the `as_*` modules wrap a value in: this serializer and
// deserializer know them; any other serde format sees a plain newtype.
const ATOM: &str = "$cnode::atom";
const CHARLIST: &str = "$cnode::charlist";
const KEYWORD: &str = "$cnode::keyword";
const RAW: &str = "$cnode::term";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    /// A struct or map becomes a keyword list, a string an atom or a charlist.
    Keyword,
    Atom,
    Charlist,
}

struct Serializer {
    mode: Mode,
}

fn plain() -> Serializer {
    Serializer { mode: Mode::Plain }
}

impl Serializer {
    fn text(&self, s: &str) -> Term {
        match self.mode {
            Mode::Atom => atom(s),
            Mode::Charlist => charlist(s),
            _ => binary(s),
        }
    }
}

impl ser::Serializer for Serializer {
    type Ok = Term;
    type Error = ConvertError;
    type SerializeSeq = Elements;
    type SerializeTuple = Elements;
    type SerializeTupleStruct = Elements;
    type SerializeTupleVariant = Elements;
    type SerializeMap = Entries;
    type SerializeStruct = Entries;
    type SerializeStructVariant = Entries;

    fn serialize_bool(self, v: bool) -> Result<Term, ConvertError> {
        Ok(boolean(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Term, ConvertError> {
        Ok(int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Term, ConvertError> {
        Ok(int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Term, ConvertError> {
        Ok(int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Term, ConvertError> {
        Ok(int(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Term, ConvertError> {
        Ok(match i64::try_from(v) {
            Ok(small) => int(small),
            Err(_) => Term::from(BigInteger::from(v)),
        })
    }
    fn serialize_u128(self, v: u128) -> Result<Term, ConvertError> {
        Ok(match i64::try_from(v) {
            Ok(small) => int(small),
            Err(_) => Term::from(BigInteger::from(v)),
        })
    }
    fn serialize_u8(self, v: u8) -> Result<Term, ConvertError> {
        Ok(int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Term, ConvertError> {
        Ok(int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Term, ConvertError> {
        Ok(int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Term, ConvertError> {
        Ok(super::IntoTerm::into_term(v))
    }
    fn serialize_f32(self, v: f32) -> Result<Term, ConvertError> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<Term, ConvertError> {
        if v.is_finite() {
            Ok(Term::Float(Float { value: v }))
        } else {
            Err(ConvertError(format!("{v} is not a float the BEAM has")))
        }
    }
    fn serialize_char(self, v: char) -> Result<Term, ConvertError> {
        Ok(self.text(v.encode_utf8(&mut [0; 4])))
    }
    fn serialize_str(self, v: &str) -> Result<Term, ConvertError> {
        Ok(self.text(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Term, ConvertError> {
        Ok(binary(v))
    }
    fn serialize_none(self) -> Result<Term, ConvertError> {
        Ok(atom("nil"))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Term, ConvertError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Term, ConvertError> {
        Ok(atom("nil"))
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Term, ConvertError> {
        Ok(atom("nil"))
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Term, ConvertError> {
        Ok(atom(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Term, ConvertError> {
        let mode = match name {
            ATOM => Mode::Atom,
            CHARLIST => Mode::Charlist,
            KEYWORD => Mode::Keyword,
            RAW => {
                // The term travels as its external format, the one way through serde's
                // data model that keeps every kind (pids, references, funs).
                let Term::Binary(b) = value.serialize(plain())? else {
                    return Err(ConvertError("as_term: not a term".into()));
                };
                return Term::from_binary(&b.bytes)
                    .map_err(|e| ConvertError(format!("as_term: {e}")));
            }
            _ => self.mode,
        };
        value.serialize(Serializer { mode })
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Term, ConvertError> {
        let content = value.serialize(plain())?;
        match result_tag(name, variant) {
            // `Ok(())`: `:ok`, as Elixir functions answer (a value of a type with no
            // data that is written `nil`: `()` or a unit struct).
            Some(tag) if std::mem::size_of_val(value) == 0 && content.is_atom("nil") => {
                Ok(atom(tag))
            }
            Some(tag) => Ok(tuple(vec![atom(tag), content])),
            None => Ok(tuple(vec![atom(variant), content])),
        }
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Elements, ConvertError> {
        Ok(Elements::new(Shape::List, len))
    }
    fn serialize_tuple(self, len: usize) -> Result<Elements, ConvertError> {
        Ok(Elements::new(Shape::Tuple, Some(len)))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Elements, ConvertError> {
        Ok(Elements::new(Shape::Tuple, Some(len)))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Elements, ConvertError> {
        let mut elements = Elements::new(Shape::Tuple, Some(len + 1));
        elements.items.push(atom(variant));
        Ok(elements)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Entries, ConvertError> {
        Ok(Entries::new(self.mode == Mode::Keyword, len, None))
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Entries, ConvertError> {
        let mut entries = Entries::new(self.mode == Mode::Keyword, Some(len + 1), None);
        if name.starts_with("Elixir.") && self.mode != Mode::Keyword {
            entries.items.push((atom("__struct__"), atom(name)));
        }
        Ok(entries)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Entries, ConvertError> {
        Ok(Entries::new(false, Some(len), Some(variant)))
    }
}

enum Shape {
    List,
    Tuple,
}

#[doc(hidden)]
pub struct Elements {
    shape: Shape,
    items: Vec<Term>,
}

impl Elements {
    fn new(shape: Shape, len: Option<usize>) -> Self {
        // A length hint is what the value says of itself, never more than it holds.
        Elements {
            shape,
            items: Vec::with_capacity(len.unwrap_or(0).min(4096)),
        }
    }
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConvertError> {
        self.items.push(value.serialize(plain())?);
        Ok(())
    }
    fn done(self) -> Term {
        match self.shape {
            Shape::List => list(self.items),
            Shape::Tuple => tuple(self.items),
        }
    }
}

// serde's four sequence traits differ only in their method's name.
macro_rules! elements {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Elements {
            type Ok = Term;
            type Error = ConvertError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConvertError> {
                self.push(value)
            }
            fn end(self) -> Result<Term, ConvertError> {
                Ok(self.done())
            }
        }
    )*};
}
elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

#[doc(hidden)]
pub struct Entries {
    keyword: bool,
    variant: Option<&'static str>,
    items: Vec<(Term, Term)>,
    key: Option<Term>,
}

impl Entries {
    fn new(keyword: bool, len: Option<usize>, variant: Option<&'static str>) -> Self {
        Entries {
            keyword,
            variant,
            items: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            key: None,
        }
    }
    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), ConvertError> {
        self.items.push((atom(key), value.serialize(plain())?));
        Ok(())
    }
    fn done(self) -> Term {
        let term = if self.keyword {
            list(
                self.items
                    .into_iter()
                    .map(|(k, v)| tuple(vec![k, v]))
                    .collect(),
            )
        } else {
            map(self.items)
        };
        match self.variant {
            Some(variant) => tuple(vec![atom(variant), term]),
            None => term,
        }
    }
}

impl ser::SerializeMap for Entries {
    type Ok = Term;
    type Error = ConvertError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ConvertError> {
        // Keys of a keyword list are atoms.
        let mode = if self.keyword {
            Mode::Atom
        } else {
            Mode::Plain
        };
        self.key = Some(key.serialize(Serializer { mode })?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConvertError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| ConvertError("a map value without its key".into()))?;
        self.items.push((key, value.serialize(plain())?));
        Ok(())
    }
    fn end(self) -> Result<Term, ConvertError> {
        Ok(self.done())
    }
}

// The struct and struct-variant traits alike.
macro_rules! fields {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Entries {
            type Ok = Term;
            type Error = ConvertError;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), ConvertError> {
                self.field(key, value)
            }
            fn end(self) -> Result<Term, ConvertError> {
                Ok(self.done())
            }
        }
    )*};
}
fields!(SerializeStruct, SerializeStructVariant);

// ---------------------------------------------------------------------------------

struct Deserializer<'de> {
    term: &'de Term,
}

fn kind(term: &Term) -> &'static str {
    match term {
        Term::Atom(_) => "an atom",
        Term::FixInteger(_) | Term::BigInteger(_) => "an integer",
        Term::Float(_) => "a float",
        Term::Pid(_) => "a pid",
        Term::Port(_) => "a port",
        Term::Reference(_) => "a reference",
        Term::ExternalFun(_) | Term::InternalFun(_) => "a function",
        Term::Binary(_) => "a binary",
        Term::BitBinary(_) => "a bitstring",
        Term::List(_) => "a list",
        Term::ImproperList(_) => "an improper list",
        Term::Tuple(_) => "a tuple",
        Term::Map(_) => "a map",
    }
}

impl<'de> Deserializer<'de> {
    fn unexpected(&self, wanted: &str) -> ConvertError {
        ConvertError(format!(
            "expected {wanted}, got {}: {}",
            kind(self.term),
            super::truncated(self.term, super::LOG_TERM_CHARS)
        ))
    }

    /// The elements of a list or a tuple.
    fn elements(&self) -> Option<Vec<&'de Term>> {
        match self.term {
            Term::List(l) => Some(l.elements.iter().collect()),
            Term::Tuple(t) => Some(t.elements.iter().collect()),
            _ => None,
        }
    }

    /// Text from a binary, an atom or a charlist.
    fn text(&self) -> Option<std::borrow::Cow<'de, str>> {
        match self.term {
            Term::Binary(b) => std::str::from_utf8(&b.bytes).ok().map(Into::into),
            Term::Atom(a) => Some(a.name().into()),
            Term::List(_) => super::chardata_to_string(self.term).map(Into::into),
            _ => None,
        }
    }

    /// The key-value pairs of a map or a keyword list.
    fn entries(&self) -> Option<Vec<(&'de Term, &'de Term)>> {
        match self.term {
            Term::Map(m) => Some(m.map.iter().collect()),
            Term::List(l) => l
                .elements
                .iter()
                .map(|e| match e {
                    Term::Tuple(t) if t.elements.len() == 2 => {
                        Some((&t.elements[0], &t.elements[1]))
                    }
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }
}

fn visit_text<'de, V: Visitor<'de>>(
    text: std::borrow::Cow<'de, str>,
    visitor: V,
) -> Result<V::Value, ConvertError> {
    match text {
        std::borrow::Cow::Borrowed(s) => visitor.visit_borrowed_str(s),
        std::borrow::Cow::Owned(s) => visitor.visit_string(s),
    }
}

impl<'de> de::Deserializer<'de> for Deserializer<'de> {
    type Error = ConvertError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.term {
            Term::Atom(a) => match a.name() {
                "true" => visitor.visit_bool(true),
                "false" => visitor.visit_bool(false),
                "nil" => visitor.visit_unit(),
                name => visitor.visit_borrowed_str(name),
            },
            Term::FixInteger(i) => visitor.visit_i64(i.value.into()),
            Term::BigInteger(b) => {
                if let Ok(v) = i64::try_from(&b.value) {
                    visitor.visit_i64(v)
                } else if let Ok(v) = u64::try_from(&b.value) {
                    visitor.visit_u64(v)
                } else if let Ok(v) = i128::try_from(&b.value) {
                    visitor.visit_i128(v)
                } else if let Ok(v) = u128::try_from(&b.value) {
                    visitor.visit_u128(v)
                } else {
                    Err(self.unexpected("an integer of 128 bits"))
                }
            }
            Term::Float(x) => visitor.visit_f64(x.value),
            Term::Binary(b) => match std::str::from_utf8(&b.bytes) {
                Ok(s) => visitor.visit_borrowed_str(s),
                Err(_) => visitor.visit_borrowed_bytes(&b.bytes),
            },
            Term::List(_) | Term::Tuple(_) => {
                let elements = self.elements().unwrap_or_default();
                visitor.visit_seq(Items::new(elements))
            }
            Term::Map(m) => visitor.visit_map(Pairs::new(m.map.iter().collect())),
            _ => {
                Err(self
                    .unexpected("a term with a Rust shape (wrap pids and references in as_term)"))
            }
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.term {
            Term::Atom(a) if a.name() == "true" => visitor.visit_bool(true),
            Term::Atom(a) if a.name() == "false" => visitor.visit_bool(false),
            _ => Err(self.unexpected("true or false")),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        // `nil`, `true` and `false` are atoms, but no text an Elixir caller means
        // (`nil` into an `Option<String>` is `None`).
        if let Term::Atom(a) = self.term {
            if matches!(a.name(), "nil" | "true" | "false") {
                return Err(self.unexpected("a string"));
            }
        }
        match self.text() {
            Some(text) => visit_text(text, visitor),
            None => Err(self.unexpected("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.term {
            Term::FixInteger(i) => match u32::try_from(i.value).ok().and_then(char::from_u32) {
                Some(c) => visitor.visit_char(c),
                None => Err(self.unexpected("a character")),
            },
            _ => self.deserialize_str(visitor),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.term {
            Term::Binary(b) => visitor.visit_borrowed_bytes(&b.bytes),
            _ => Err(self.unexpected("a binary")),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.term {
            Term::Atom(a) if a.name() == "nil" || a.name() == "undefined" => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    /// `()`: `nil` (what it is written as), or `:ok`, `[]` or `{}`, which say nothing
    /// either; anything else is a value the Rust type would drop.
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.term {
            Term::Atom(a) if matches!(a.name(), "nil" | "ok") => visitor.visit_unit(),
            Term::List(l) if l.elements.is_empty() => visitor.visit_unit(),
            Term::Tuple(t) if t.elements.is_empty() => visitor.visit_unit(),
            _ => Err(self.unexpected("nil (a Rust ())")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        if name == RAW {
            let bytes = self
                .term
                .to_binary()
                .map_err(|e| ConvertError(format!("as_term: {e}")))?;
            return visitor.visit_byte_buf(bytes);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.elements() {
            Some(elements) => visitor.visit_seq(Items::new(elements)),
            None => Err(self.unexpected("a list or a tuple")),
        }
    }

    /// Exactly `len` elements: more are no more droppable than fewer, as `{a, b} =
    /// {1, 2, 3}` is no match in Elixir.
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        match self.elements() {
            Some(elements) if elements.len() == len => visitor.visit_seq(Items::new(elements)),
            Some(_) => Err(self.unexpected(&format!("{len} elements"))),
            None => Err(self.unexpected("a list or a tuple")),
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.entries() {
            Some(entries) => visitor.visit_map(Pairs::new(entries)),
            None => Err(self.unexpected("a map or a keyword list")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        if name == "Result" {
            // `{:ok, v}` and `{:error, e}`; `:ok` and `:error` for `Ok(())` and `Err(())`.
            let (tag, rest) = match self.term {
                Term::Atom(a) => (a.name(), None),
                Term::Tuple(t) => match t.elements.first() {
                    Some(Term::Atom(a)) => (a.name(), Some(&t.elements[1..])),
                    _ => ("", None),
                },
                _ => ("", None),
            };
            return match result_variant(tag) {
                Some(tag) => visitor.visit_enum(Variant {
                    tag,
                    rest: rest.unwrap_or(&[]),
                    bare: rest.is_none(),
                }),
                None => Err(self.unexpected("{:ok, value} or {:error, reason}")),
            };
        }
        match self.term {
            Term::Atom(a) => visitor.visit_enum(a.name().into_deserializer()),
            Term::Binary(_) => match self.text() {
                Some(text) => visitor.visit_enum(text.into_owned().into_deserializer()),
                None => Err(self.unexpected("a variant")),
            },
            Term::Tuple(t) if !t.elements.is_empty() => match &t.elements[0] {
                Term::Atom(tag) => visitor.visit_enum(Variant {
                    tag: tag.name(),
                    rest: &t.elements[1..],
                    bare: false,
                }),
                _ => Err(self.unexpected("a tuple tagged with an atom")),
            },
            _ => Err(self.unexpected("an atom or a tagged tuple")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        visitor.visit_unit()
    }

    /// A float, or an integer of any size as the float nearest it (as `x / 1` makes
    /// one in Elixir).
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.term {
            Term::BigInteger(b) => match nearest_f64(&b.value) {
                Some(x) => visitor.visit_f64(x),
                None => Err(self.unexpected("a float")),
            },
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        self.deserialize_f64(visitor)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128
    }
}

/// `value` as the nearest `f64`, if finite.
fn nearest_f64(value: &num_bigint::BigInt) -> Option<f64> {
    let x: f64 = value.to_string().parse().ok()?;
    x.is_finite().then_some(x)
}

struct Items<'de> {
    items: std::vec::IntoIter<&'de Term>,
}

impl<'de> Items<'de> {
    fn new(items: Vec<&'de Term>) -> Self {
        Items {
            items: items.into_iter(),
        }
    }
}

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = ConvertError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ConvertError> {
        match self.items.next() {
            None => Ok(None),
            Some(term) => seed.deserialize(Deserializer { term }).map(Some),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Pairs<'de> {
    items: std::vec::IntoIter<(&'de Term, &'de Term)>,
    value: Option<&'de Term>,
}

impl<'de> Pairs<'de> {
    fn new(items: Vec<(&'de Term, &'de Term)>) -> Self {
        Pairs {
            items: items.into_iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Pairs<'de> {
    type Error = ConvertError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ConvertError> {
        match self.items.next() {
            None => Ok(None),
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(Deserializer { term: key }).map(Some)
            }
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ConvertError> {
        let term = self
            .value
            .take()
            .ok_or_else(|| ConvertError("a map value without its key".into()))?;
        seed.deserialize(Deserializer { term })
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// `{:tag, ...}`: an enum variant with its content.
struct Variant<'de> {
    tag: &'de str,
    rest: &'de [Term],
    /// A bare atom (`:ok`) read as a newtype variant: its content is `()` (or `None`).
    bare: bool,
}

impl<'de> de::EnumAccess<'de> for Variant<'de> {
    type Error = ConvertError;
    type Variant = Self;
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self), ConvertError> {
        let tag: de::value::BorrowedStrDeserializer<'de, ConvertError> =
            de::value::BorrowedStrDeserializer::new(self.tag);
        Ok((seed.deserialize(tag)?, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'de> {
    type Error = ConvertError;
    fn unit_variant(self) -> Result<(), ConvertError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ConvertError(format!(
                "expected :{} alone, got it with {} more elements",
                self.tag,
                self.rest.len()
            )))
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ConvertError> {
        match self.rest {
            [term] => seed.deserialize(Deserializer { term }),
            [] if self.bare => seed.deserialize(de::value::UnitDeserializer::new()),
            _ => Err(ConvertError(format!(
                "expected {{:{}, value}}, got {} elements after the tag",
                self.tag,
                self.rest.len()
            ))),
        }
    }
    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        if self.rest.len() != len {
            return Err(ConvertError(format!(
                "expected {{:{}, ...}} with {len} elements after the tag, got {}",
                self.tag,
                self.rest.len()
            )));
        }
        visitor.visit_seq(Items::new(self.rest.iter().collect()))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        match self.rest {
            [term] => de::Deserializer::deserialize_map(Deserializer { term }, visitor),
            _ => Err(ConvertError(format!(
                "expected {{:{}, %{{...}}}}",
                self.tag
            ))),
        }
    }
}

// ---------------------------------------------------------------------------------

/// `#[serde(with = "cnode::term::as_atom")]` on a `String` field: the string is an atom.
pub mod as_atom {
    use serde::{Deserialize, Deserializer, Serializer};

    /// The field as an atom.
    pub fn serialize<S: Serializer>(value: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(super::ATOM, value)
    }

    /// An atom (or a string) as the field.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        String::deserialize(d)
    }
}

/// `#[serde(with = "cnode::term::as_charlist")]` on a `String` field: the string is a
/// charlist (`~c"..."`), as Erlang APIs take text.
pub mod as_charlist {
    use serde::{Deserialize, Deserializer, Serializer};

    /// The field as a charlist.
    pub fn serialize<S: Serializer>(value: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(super::CHARLIST, value)
    }

    /// A charlist (or a string) as the field.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        String::deserialize(d)
    }
}

/// `#[serde(with = "cnode::term::as_keyword")]` on a struct or map field: a keyword list
/// (`[timeout: 5000, retries: 3]`) in the order of the fields.
pub mod as_keyword {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// The field as a keyword list.
    pub fn serialize<T: Serialize + ?Sized, S: Serializer>(
        value: &T,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(super::KEYWORD, value)
    }

    /// A keyword list (or a map) as the field.
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        T::deserialize(d)
    }
}

/// `#[serde(with = "cnode::term::as_term")]` on a field of type [`Term`],
/// [`Pid`](super::Pid), [`Reference`](super::Reference) or another term type: the term
/// as it is.
pub mod as_term {
    use super::Term;
    use serde::de::{self, Deserializer, Visitor};
    use serde::Serializer;
    use std::fmt;

    /// Bytes that serialize as bytes (a `Vec<u8>` is a sequence in serde).
    struct Bytes<'a>(&'a [u8]);

    impl serde::Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    /// The term, as it is.
    pub fn serialize<T, S>(value: &T, s: S) -> Result<S::Ok, S::Error>
    where
        T: Clone + Into<Term>,
        S: Serializer,
    {
        let bytes = value
            .clone()
            .into()
            .to_binary()
            .map_err(serde::ser::Error::custom)?;
        s.serialize_newtype_struct(super::RAW, &Bytes(&bytes))
    }

    /// The term, as it is (an error if it is not a `T`).
    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        Term: TryInto<T>,
        D: Deserializer<'de>,
    {
        struct Encoded;
        impl Visitor<'_> for Encoded {
            type Value = Term;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a term")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Term, E> {
                Term::from_binary(v).map_err(E::custom)
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Term, E> {
                self.visit_bytes(&v)
            }
        }
        let term = d.deserialize_newtype_struct(super::RAW, Encoded)?;
        let shown = super::super::truncated(&term, super::super::LOG_TERM_CHARS);
        term.try_into()
            .map_err(|_| de::Error::custom(format!("not of the field's kind: {shown}")))
    }
}

/// A [`Term`], [`Pid`](super::Pid), [`Reference`](super::Reference) or
/// [`Port`](super::Port) in a Rust type is the term as it is, as [`as_term`] keeps a
/// field: a reply of pids is `Result<Vec<Pid>, Why>`. (Through another serde format
/// than this crate's, it travels as its external format's bytes.)
macro_rules! serde_as_term {
    ($($kind:ty),*) => {$(
        impl serde::Serialize for $kind {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                as_term::serialize(self, s)
            }
        }
        impl<'de> serde::Deserialize<'de> for $kind {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                as_term::deserialize(d)
            }
        }
    )*};
}
serde_as_term!(Term, super::Pid, super::Reference, super::Port);

/// An [`Atom`](super::Atom) is an atom (read from an atom, a string or a charlist, as
/// a `String` is; a new one within the limits of the atoms a peer may make).
impl serde::Serialize for super::Atom {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(ATOM, self.name())
    }
}

impl<'de> serde::Deserialize<'de> for super::Atom {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Bounded as an atom a peer sends: a string from a peer may name one.
        let name = String::deserialize(d)?;
        super::Atom::from_peer(&name).map_err(de::Error::custom)
    }
}
