//! Terms from Rust values: [`IntoTerm`] and the [`term!`](crate::term!) macro.

use super::{
    atom, binary, int, list, map, tuple, Atom, BigInteger, Float, Pid, Port, Reference, Term,
};
use std::collections::{BTreeMap, HashMap};

/// A Rust value as the term an Elixir user expects: integers and floats as numbers,
/// `bool` as `true`/`false`, strings as binaries (Elixir strings), `Option` as the value
/// or `nil`, `Vec` and slices as lists, Rust tuples as tuples, maps as maps.
///
/// ```
/// use cnode::term::{IntoTerm, Inspect};
/// let t = (42, "hi", vec![1.5, 2.0], Some(true), None::<i64>).into_term();
/// assert_eq!(t.inspect().to_string(), r#"{42, "hi", [1.5, 2.0], true, nil}"#);
/// ```
pub trait IntoTerm {
    /// The term.
    fn into_term(self) -> Term;
}

impl IntoTerm for Term {
    fn into_term(self) -> Term {
        self
    }
}

/// `Term::from(42)`, `Term::from("hi")` (a binary), `let t: Term = 2.5.into()`: the
/// plain values, as [`IntoTerm`] makes them.
macro_rules! from_plain {
    ($($t:ty),*) => {$(
        impl From<$t> for Term {
            fn from(value: $t) -> Term {
                value.into_term()
            }
        }
    )*};
}
from_plain!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64, bool, &str, String);

impl IntoTerm for &Term {
    fn into_term(self) -> Term {
        self.clone()
    }
}

macro_rules! small_ints {
    ($($t:ty),*) => {$(
        impl IntoTerm for $t {
            fn into_term(self) -> Term {
                int(i64::from(self))
            }
        }
    )*};
}
small_ints!(i8, i16, i32, i64, u8, u16, u32);

impl IntoTerm for u64 {
    fn into_term(self) -> Term {
        match i64::try_from(self) {
            Ok(small) => int(small),
            Err(_) => Term::from(BigInteger::from(self)),
        }
    }
}

impl IntoTerm for usize {
    fn into_term(self) -> Term {
        (self as u64).into_term()
    }
}

impl IntoTerm for isize {
    fn into_term(self) -> Term {
        int(self as i64)
    }
}

impl IntoTerm for f64 {
    fn into_term(self) -> Term {
        Term::Float(Float { value: self })
    }
}

impl IntoTerm for f32 {
    fn into_term(self) -> Term {
        f64::from(self).into_term()
    }
}

impl IntoTerm for bool {
    fn into_term(self) -> Term {
        super::boolean(self)
    }
}

/// A character as Elixir's `?a`: its code point.
impl IntoTerm for char {
    fn into_term(self) -> Term {
        int(i64::from(u32::from(self)))
    }
}

impl IntoTerm for &str {
    fn into_term(self) -> Term {
        binary(self)
    }
}

impl IntoTerm for String {
    fn into_term(self) -> Term {
        binary(self)
    }
}

impl IntoTerm for &String {
    fn into_term(self) -> Term {
        binary(self.as_str())
    }
}

impl IntoTerm for Atom {
    fn into_term(self) -> Term {
        Term::Atom(self)
    }
}

impl IntoTerm for Pid {
    fn into_term(self) -> Term {
        Term::Pid(self)
    }
}

impl IntoTerm for &Pid {
    fn into_term(self) -> Term {
        Term::Pid(*self)
    }
}

impl IntoTerm for Reference {
    fn into_term(self) -> Term {
        Term::Reference(Box::new(self))
    }
}

impl IntoTerm for Port {
    fn into_term(self) -> Term {
        Term::Port(self)
    }
}

impl<T: IntoTerm> IntoTerm for Option<T> {
    fn into_term(self) -> Term {
        match self {
            Some(value) => value.into_term(),
            None => atom("nil"),
        }
    }
}

/// `{:ok, value}` or `{:error, reason}`, as serde writes a `Result` ([`to_term`](super::to_term)).
impl<T: IntoTerm, E: IntoTerm> IntoTerm for Result<T, E> {
    fn into_term(self) -> Term {
        match self {
            Ok(value) => tuple(vec![atom("ok"), value.into_term()]),
            Err(reason) => tuple(vec![atom("error"), reason.into_term()]),
        }
    }
}

impl<T: IntoTerm> IntoTerm for Vec<T> {
    fn into_term(self) -> Term {
        list(self.into_iter().map(IntoTerm::into_term).collect())
    }
}

impl<T: IntoTerm + Clone> IntoTerm for &[T] {
    fn into_term(self) -> Term {
        list(self.iter().cloned().map(IntoTerm::into_term).collect())
    }
}

impl<K: IntoTerm, V: IntoTerm, S> IntoTerm for HashMap<K, V, S> {
    fn into_term(self) -> Term {
        map(self
            .into_iter()
            .map(|(k, v)| (k.into_term(), v.into_term())))
    }
}

impl<K: IntoTerm, V: IntoTerm> IntoTerm for BTreeMap<K, V> {
    fn into_term(self) -> Term {
        map(self
            .into_iter()
            .map(|(k, v)| (k.into_term(), v.into_term())))
    }
}

macro_rules! tuples {
    ($(($($name:ident),+)),*) => {$(
        impl<$($name: IntoTerm),+> IntoTerm for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_term(self) -> Term {
                let ($($name,)+) = self;
                tuple(vec![$($name.into_term()),+])
            }
        }
    )*};
}
tuples!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H)
);

/// Whether `name` starts as an Elixir alias does (a capital letter): for
/// [`term!`](crate::term!).
#[doc(hidden)]
pub const fn is_alias(name: &str) -> bool {
    !name.is_empty() && name.as_bytes()[0].is_ascii_uppercase()
}

/// `&Module.function/arity` for [`term!`](crate::term!): `path` is the alias's parts
/// and the function's name last.
#[doc(hidden)]
pub fn export_fun(path: &[&str], arity: u8) -> Term {
    let (function, module) = path.split_last().expect("term!: &Module.function/arity");
    let module = match module {
        ["Elixir", ..] => module.join("."),
        _ => format!("Elixir.{}", module.join(".")),
    };
    Term::from(super::ExternalFun::from((
        module.as_str(),
        *function,
        arity,
    )))
}

/// A term written as in Elixir: `:ok` and `:"two words"` are atoms, `{...}` tuples,
/// `[...]` lists (with `key: value` elements for keyword lists), `%{k => v}` and
/// `%{key: v}` maps, `nil`/`true`/`false` atoms, a dotted alias (`MyApp.Worker`,
/// `Elixir.Registry`) the atom `:"Elixir.MyApp.Worker"` (a bare `Registry` is a Rust
/// name: write `Elixir.Registry`), `&Enum.sum/1` and `&:lists.sum/1` external
/// funs; literals and Rust variables become
/// terms through [`IntoTerm`] (strings as binaries), and `(expr)` takes any Rust
/// expression. A variable is moved into the term, as into `vec![x]`: to keep using
/// it, write `(&name)` (a `&str`, `&String`, `&Pid`, `&Term` or slice is taken by
/// reference) or `(name.clone())`.
///
/// ```
/// use cnode::term;
/// use cnode::term::Inspect;
/// let count = 3;
/// let name = "alex";
/// let t = term!({:reply, %{count: count, name: name}, [timeout: 5000, log: nil], (count * 2)});
/// assert_eq!(
///     t.inspect().to_string(),
///     r#"{:reply, %{count: 3, name: "alex"}, [timeout: 5000, log: nil], 6}"#
/// );
/// assert_eq!(term!([:a, -1, 2.5, "x"]).inspect().to_string(), r#"[:a, -1, 2.5, "x"]"#);
/// let via = term!({:via, Elixir.Registry, {MyApp.Workers, "alice"}});
/// assert_eq!(via.inspect().to_string(), r#"{:via, Registry, {MyApp.Workers, "alice"}}"#);
/// let funs = term!([&Enum.sum/1, &:lists.reverse/1]);
/// assert_eq!(funs.inspect().to_string(), "[&Enum.sum/1, &:lists.reverse/1]");
/// ```
///
/// Each element costs the compiler a step of macro expansion: a long list is better
/// built with [`list`] from an iterator.
#[macro_export]
macro_rules! term {
    // Comma-separated elements, each of one or more tokens.
    (@seq $m:ident [$($done:expr,)*] []) => { vec![$($done,)*] };
    (@seq $m:ident [$($done:expr,)*] [$($cur:tt)+]) => {
        vec![$($done,)* $crate::term!(@one $m $($cur)+)]
    };
    (@seq $m:ident [$($done:expr,)*] [$($cur:tt)+] , $($rest:tt)*) => {
        $crate::term!(@seq $m [$($done,)* $crate::term!(@one $m $($cur)+),] [] $($rest)*)
    };
    (@seq $m:ident [$($done:expr,)*] [$($cur:tt)*] $next:tt $($rest:tt)*) => {
        $crate::term!(@seq $m [$($done,)*] [$($cur)* $next] $($rest)*)
    };
    (@one item $k:ident : $($v:tt)+) => {
        $crate::term::tuple(vec![$crate::term::atom(stringify!($k)), $crate::term!($($v)+)])
    };
    (@one item $($t:tt)+) => { $crate::term!($($t)+) };
    (@one pair $k:ident : $($v:tt)+) => {
        ($crate::term::atom(stringify!($k)), $crate::term!($($v)+))
    };
    (@one pair $($t:tt)+) => { $crate::term!(@pair [] $($t)+) };
    (@pair [$($k:tt)+] => $($v:tt)+) => { ($crate::term!($($k)+), $crate::term!($($v)+)) };
    (@pair [$($k:tt)*] $next:tt $($rest:tt)*) => { $crate::term!(@pair [$($k)* $next] $($rest)*) };

    (: $a:ident) => { $crate::term::atom(stringify!($a)) };
    (: $a:literal) => { $crate::term::atom($a) };
    (nil) => { $crate::term::atom("nil") };
    ({ $($t:tt)* }) => { $crate::term::tuple($crate::term!(@seq item [] [] $($t)*)) };
    ([ $($t:tt)* ]) => { $crate::term::list($crate::term!(@seq item [] [] $($t)*)) };
    (% { $($t:tt)* }) => {
        $crate::term::map(<Vec<($crate::term::Term, $crate::term::Term)>>::from(
            $crate::term!(@seq pair [] [] $($t)*)
        ))
    };
    // External funs: `&Enum.sum/1`, `&:lists.sum/1`.
    (& : $m:ident . $f:ident / $a:literal) => {
        $crate::term::Term::from($crate::term::ExternalFun::from((stringify!($m), stringify!($f), $a)))
    };
    (& $first:ident $(. $rest:ident)+ / $a:literal) => {{
        const _: () = assert!(
            $crate::term::is_alias(stringify!($first)),
            "term!: a fun is `&Module.function/arity` or `&:module.function/arity`"
        );
        $crate::term::export_fun(&[stringify!($first) $(, stringify!($rest))+], $a)
    }};
    // Elixir aliases: `Elixir.Registry` and `MyApp.Worker` are the atoms
    // `:"Elixir.Registry"` and `:"Elixir.MyApp.Worker"`.
    (Elixir $(. $rest:ident)+) => {
        $crate::term::atom(concat!("Elixir" $(, ".", stringify!($rest))+))
    };
    ($first:ident $(. $rest:ident)+) => {{
        const _: () = assert!(
            $crate::term::is_alias(stringify!($first)),
            "term!: `a.b` is an Elixir alias only when capitalized (`MyApp.Worker`); write `(a.b)` for a Rust expression"
        );
        $crate::term::atom(concat!("Elixir.", stringify!($first) $(, ".", stringify!($rest))+))
    }};
    (- $l:literal) => { $crate::term::IntoTerm::into_term(-$l) };
    ($l:literal) => { $crate::term::IntoTerm::into_term($l) };
    ($v:ident) => { $crate::term::IntoTerm::into_term($v) };
    (( $e:expr )) => { $crate::term::IntoTerm::into_term($e) };
}
