//! Terms from text, in Elixir's syntax ([`parse`]) or Erlang's ([`parse_erlang`]): the
//! literals of each language, no variables and no code.

use super::{
    atom, binary, int, list, map, tuple, BigInteger, BitBinary, Float, ImproperList, Match, Term,
};
use num_bigint::BigInt;
use std::fmt;

/// Why text is not a term, and where: `column` counts characters from 1 on `line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What was expected or found.
    pub message: String,
    /// The byte offset in the text.
    pub offset: usize,
    /// The line, from 1.
    pub line: usize,
    /// The column on that line, from 1, in characters.
    pub column: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

/// How deeply a parsed term may nest.
const MAX_DEPTH: usize = 128;

/// The node of a pid read as its own node prints it (`#PID<0.107.0>`, `<0.107.0>` in
/// Erlang's syntax): a pid of `nonode@nohost` (creation 0), which the program puts on
/// the node it means, as the `cnode` command does with the node it calls.
pub const LOCAL_NODE: &str = "nonode@nohost";

/// A term written in Elixir's syntax: `{:ok, [1, 2.5, "text", ~c"chars"], %{a: 1}}`,
/// keyword lists, structs (`%URI{host: "x"}`), aliases (`Enum` is `:"Elixir.Enum"`),
/// bitstrings in the bit syntax (`<<1::16, 2.5::float-32, "é"::utf16-little>>`, built
/// as the BEAM builds them), integers of any size in any of Elixir's
/// notations (`-5`, `1_000`, `0x1F`, `0o17`, `0b101`, `?a`, `?\n`), ranges (`1..9//2`),
/// the sigils of text (`~s(...)`, `~c[...]`, `~w(a b)a` and their raw upper-case forms)
/// and of the calendar (`~D[2026-12-04]`, `~T`, `~N`, `~U`), external funs
/// (`&Enum.sum/1`, `&:lists.sum/1`); and a pid as its node
/// prints its own, `#PID<0.107.0>`, on [`LOCAL_NODE`], or with its node named as this
/// crate prints another node's, `#PID<alex@localhost.107.0>`, with creation 0 (the
/// program puts each on the node's present incarnation, as the `cnode` command does).
///
/// ```
/// use cnode::term::{parse, Inspect};
/// let t = parse(r#"{:ok, [a: 1], %{"k" => <<1, 2>>}}"#).unwrap();
/// assert_eq!(t.inspect().to_string(), r#"{:ok, [a: 1], %{"k" => <<1, 2>>}}"#);
/// assert_eq!(parse("[1, 2").unwrap_err().to_string(), "1:6: expected , or ] in a list, found the end");
/// ```
pub fn parse(text: &str) -> Result<Term, ParseError> {
    Parser::new(text, Syntax::Elixir).whole()
}

/// A term written in Erlang's syntax: `{ok, [1, 2.5, <<"text">>, "chars"], #{a => 1}}`,
/// integers of any size (`16#1F`, `$a`), bitstrings in the bit syntax (`<<1:16/little>>`),
/// external funs (`fun lists:sum/1`),
/// a pid as its node prints its own (`<0.107.0>`, on [`LOCAL_NODE`]) or with its node
/// named (`<alex@localhost.107.0>`, creation 0), as for [`parse`].
///
/// ```
/// use cnode::term::{parse_erlang, Inspect};
/// let t = parse_erlang(r#"{ok, "ab", #{'Elixir.Enum' => <<"x">>}}"#).unwrap();
/// assert_eq!(t.inspect().to_string(), r#"{:ok, ~c"ab", %{Enum => "x"}}"#);
/// ```
pub fn parse_erlang(text: &str) -> Result<Term, ParseError> {
    Parser::new(text, Syntax::Erlang).whole()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Elixir,
    Erlang,
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    syntax: Syntax,
    depth: usize,
    /// Reading the module of `&Module.function/arity`, which a `.function` follows.
    fun_module: bool,
}

type Parsed<T> = Result<T, ParseError>;

impl<'a> Parser<'a> {
    fn new(text: &'a str, syntax: Syntax) -> Self {
        Parser {
            text,
            pos: 0,
            syntax,
            depth: 0,
            fun_module: false,
        }
    }

    fn error<T>(&self, message: impl Into<String>) -> Parsed<T> {
        self.error_at(self.pos, message)
    }

    fn error_at<T>(&self, offset: usize, message: impl Into<String>) -> Parsed<T> {
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        Err(ParseError {
            message: message.into(),
            offset,
            line,
            column,
        })
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// What is next, for an error: the next token-ish, or "the end".
    fn found(&self) -> String {
        match self.peek() {
            None => "the end".into(),
            Some(c) => format!("{c:?}"),
        }
    }

    fn skip_space(&mut self) {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            // Comments: `#` in Elixir, `%` in Erlang, to the end of the line.
            let comment = match self.syntax {
                Syntax::Elixir => {
                    trimmed.starts_with('#')
                        && !trimmed.starts_with("#PID<")
                        && unreadable(trimmed).is_none()
                }
                Syntax::Erlang => trimmed.starts_with('%'),
            };
            if !comment {
                return;
            }
            self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        self.skip_space();
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn whole(mut self) -> Parsed<Term> {
        let t = self.term()?;
        self.skip_space();
        // A trailing `.` ends an Erlang term, as in `erl_call -e`.
        if self.syntax == Syntax::Erlang {
            self.eat(".");
            self.skip_space();
        }
        if self.pos < self.text.len() {
            return self.error(format!("expected the end, found {}", self.found()));
        }
        Ok(t)
    }

    fn term(&mut self) -> Parsed<Term> {
        self.skip_space();
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.error(format!("terms nest deeper than {MAX_DEPTH}"));
        }
        let t = match (self.shared_term(), self.syntax) {
            (Some(t), Syntax::Erlang) => t,
            (None, Syntax::Erlang) => self.erlang_term(),
            (t, Syntax::Elixir) => t
                .unwrap_or_else(|| self.elixir_term())
                .and_then(|t| self.range_after(t)),
        };
        self.depth -= 1;
        t
    }

    /// What both languages write alike: tuples, lists, bitstrings and numbers.
    fn shared_term(&mut self) -> Option<Parsed<Term>> {
        Some(match self.peek()? {
            '{' => {
                self.pos += 1;
                self.elements('}', "a tuple").map(tuple)
            }
            '[' => {
                self.pos += 1;
                self.list(']')
            }
            '<' if self.rest().starts_with("<<") => {
                self.pos += 2;
                self.bitstring()
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => self.number(),
            _ => return None,
        })
    }

    fn elixir_term(&mut self) -> Parsed<Term> {
        let start = self.pos;
        let Some(c) = self.peek() else {
            return self.error("expected a term, found the end");
        };
        match c {
            '#' if self.rest().starts_with("#PID<") => {
                self.pos += "#PID<".len();
                self.local_pid("#PID<", start)
            }
            '#' if unreadable(self.rest()).is_some() => {
                let what = unreadable(self.rest()).unwrap_or_default();
                self.error_at(start, what)
            }
            '%' => self.elixir_map(),
            '"' => {
                self.pos += 1;
                Ok(binary(self.text('"')?.bytes()))
            }
            '\'' => {
                self.pos += 1;
                match self.text('\'')?.charlist() {
                    Some(chars) => Ok(chars),
                    None => self.error_at(start, INVALID_UTF8_CHARS),
                }
            }
            '~' => self.sigil(),
            ':' => {
                self.pos += 1;
                if let Some(quote @ ('"' | '\'')) = self.peek() {
                    self.pos += 1;
                    let s = self.string(quote)?;
                    return Ok(atom(&s));
                }
                let name = self.take_while(|c| c.is_alphanumeric() || c == '_' || c == '@');
                if !name.is_empty() {
                    let mut name = name.to_owned();
                    if let Some(mark @ ('?' | '!')) = self.peek() {
                        self.pos += 1;
                        name.push(mark);
                    }
                    // `:Elixir.Enum` is an atom with dots in it.
                    while self.peek() == Some('.') && name.starts_with(char::is_uppercase) {
                        self.pos += 1;
                        name.push('.');
                        name.push_str(self.take_while(|c| c.is_alphanumeric() || c == '_'));
                    }
                    return Ok(atom(&name));
                }
                let op = self.take_while(|c| "+-*/<>=!&|^~.\\@%{}".contains(c));
                if op.is_empty() {
                    return self.error_at(start, "expected an atom after :");
                }
                Ok(atom(op))
            }
            '?' => self.char_literal('?'),
            '&' => {
                self.pos += 1;
                self.export_fun(start, ".")
            }
            c if c.is_uppercase() => {
                let mut name = String::from("Elixir.");
                name.push_str(self.take_while(|c| c.is_alphanumeric() || c == '_'));
                while self.rest().starts_with('.')
                    && self.rest()[1..].starts_with(char::is_uppercase)
                {
                    self.pos += 1;
                    name.push('.');
                    name.push_str(self.take_while(|c| c.is_alphanumeric() || c == '_'));
                }
                // `MapSet.new([1])`: a call, which only the node could make.
                if !self.fun_module
                    && self.rest().starts_with('.')
                    && self.rest()[1..].starts_with(|c: char| c.is_lowercase() || c == '_')
                {
                    return self.error_at(
                        start,
                        "a function call is not a term (write the value it gives, or call the function with cnode call)",
                    );
                }
                // `Elixir` is `:Elixir`, and `Elixir.Enum` is `Enum`.
                let name = match &name["Elixir.".len()..] {
                    alias if alias == "Elixir" || alias.starts_with("Elixir.") => alias,
                    _ => &name,
                };
                Ok(atom(name))
            }
            c if c.is_alphabetic() || c == '_' => {
                let word = self.take_while(|c| c.is_alphanumeric() || c == '_');
                match word {
                    "true" | "false" | "nil" => Ok(atom(word)),
                    _ => self.error_at(
                        start,
                        format!("{word} is a variable, not a term (an atom is :{word})"),
                    ),
                }
            }
            _ => self.error(format!("expected a term, found {}", self.found())),
        }
    }

    /// The rest of a pid as its own node prints it, `0.107.0>` after `#PID<` (or `<`):
    /// a pid of [`LOCAL_NODE`], for the program to put on the node it means. Another
    /// node's (`#PID<12345.107.0>`, numbered by the node that printed it) says nothing
    /// of which node that is.
    fn local_pid(&mut self, opening: &str, start: usize) -> Parsed<Term> {
        if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
            return self.named_pid(opening, start);
        }
        let mut numbers = [0u32; 3];
        for (i, n) in numbers.iter_mut().enumerate() {
            let digits = self.take_while(|c| c.is_ascii_digit());
            *n = match digits.parse() {
                Ok(n) => n,
                Err(_) => {
                    return self.error(format!(
                        "expected a number in {opening}...>, found {}",
                        self.found()
                    ))
                }
            };
            let close = if i == 2 { '>' } else { '.' };
            if self.peek() != Some(close) {
                return self.error(format!(
                    "expected {close} in {opening}...>, found {}",
                    self.found()
                ));
            }
            self.pos += 1;
        }
        let [node, id, serial] = numbers;
        if node != 0 {
            return self.error_at(
                start,
                format!("{opening}{node}.{id}.{serial}> is a pid of another node, which its number does not name: only a node's own pids, {opening}0.{id}.{serial}>, can be read"),
            );
        }
        Ok(Term::Pid(super::Pid::new(LOCAL_NODE, id, serial, 0)))
    }

    /// A pid as a display without a node of its own prints it, its node named,
    /// `#PID<alex@localhost.107.0>` (`<alex@localhost.107.0>`): on that node, with
    /// creation 0, which the program replaces with the node's present one.
    fn named_pid(&mut self, opening: &str, start: usize) -> Parsed<Term> {
        let text = self.take_while(|c| c != '>' && !c.is_whitespace());
        let parsed = text.rsplitn(3, '.').collect::<Vec<_>>();
        let pid = match parsed[..] {
            [serial, id, node] if node.contains('@') => {
                match (id.parse::<u32>(), serial.parse::<u32>()) {
                    (Ok(id), Ok(serial)) => Some(super::Pid::new(node, id, serial, 0)),
                    _ => None,
                }
            }
            _ => None,
        };
        match (pid, self.peek()) {
            (Some(pid), Some('>')) => {
                self.pos += 1;
                Ok(Term::Pid(pid))
            }
            _ => self.error_at(
                start,
                format!(
                    "expected {opening}0.ID.SERIAL> or {opening}node@host.ID.SERIAL>, found {opening}{text}"
                ),
            ),
        }
    }

    fn erlang_term(&mut self) -> Parsed<Term> {
        let start = self.pos;
        let rest = self.rest();
        let Some(c) = self.peek() else {
            return self.error("expected a term, found the end");
        };
        match c {
            '#' if rest.starts_with("#{") => {
                self.pos += 2;
                let entries = self.entries()?;
                Ok(map(entries))
            }
            '#' if unreadable(rest).is_some() => {
                let what = unreadable(rest).unwrap_or_default();
                self.error_at(start, what)
            }
            '<' if !rest.starts_with("<<") => {
                self.pos += 1;
                self.local_pid("<", start)
            }
            '"' => {
                self.pos += 1;
                let s = self.string('"')?;
                Ok(super::charlist(&s))
            }
            '\'' => {
                self.pos += 1;
                let s = self.string('\'')?;
                Ok(atom(&s))
            }
            '$' => self.char_literal('$'),
            c if c.is_lowercase() => {
                let name = self.take_while(|c| c.is_alphanumeric() || c == '_' || c == '@');
                // `fun` is a reserved word (the atom is `'fun'`): `fun lists:sum/1`.
                if name == "fun" {
                    return self.export_fun(start, ":");
                }
                Ok(atom(name))
            }
            c if c.is_uppercase() || c == '_' => {
                let word = self.take_while(|c| c.is_alphanumeric() || c == '_');
                self.error_at(start, format!("{word} is a variable, not a term"))
            }
            _ => self.error(format!("expected a term, found {}", self.found())),
        }
    }

    /// The rest of an external fun after `&` (Elixir: `&Enum.sum/1`, `&:lists.sum/1`,
    /// `&Kernel."is_atom"/1`) or `fun` (Erlang: `fun lists:sum/1`): a module, `dot`, a
    /// function and its arity.
    fn export_fun(&mut self, start: usize, dot: &str) -> Parsed<Term> {
        let expected = |p: &Self| {
            let written = match p.syntax {
                Syntax::Elixir => "&Module.function/arity",
                Syntax::Erlang => "fun module:function/arity",
            };
            p.error_at(start, format!("expected a function as {written}"))
        };
        self.skip_space();
        self.fun_module = true;
        let module = match self.syntax {
            Syntax::Elixir => self.elixir_term(),
            Syntax::Erlang => self.erlang_term(),
        };
        self.fun_module = false;
        let Ok(Term::Atom(module)) = module else {
            return expected(self);
        };
        if !self.rest().starts_with(dot) {
            return expected(self);
        }
        self.pos += dot.len();
        let function = match (self.peek(), self.syntax) {
            (Some(quote @ '"'), Syntax::Elixir) | (Some(quote @ '\''), Syntax::Erlang) => {
                self.pos += 1;
                self.string(quote)?
            }
            _ => {
                let name = self.take_while(|c| c.is_alphanumeric() || c == '_' || c == '@');
                let mut name = name.to_owned();
                if let (Some(mark @ ('?' | '!')), Syntax::Elixir) = (self.peek(), self.syntax) {
                    self.pos += 1;
                    name.push(mark);
                }
                if !name.starts_with(|c: char| c.is_lowercase() || c == '_') {
                    return expected(self);
                }
                name
            }
        };
        if !self.eat("/") {
            return expected(self);
        }
        self.skip_space();
        let Ok(arity) = self.take_while(|c| c.is_ascii_digit()).parse::<u8>() else {
            return self.error_at(start, "a function's arity is 0 to 255");
        };
        Ok(Term::from(super::ExternalFun::from((
            module.name(),
            function.as_str(),
            arity,
        ))))
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let end = rest.find(|c| !f(c)).unwrap_or(rest.len());
        self.pos += end;
        &rest[..end]
    }

    /// Terms separated by commas up to `close` (already past the opening bracket).
    /// `close` right after a comma, which Elixir takes (`[1, 2,]`) and Erlang does not.
    fn trailing(&mut self, close: char) -> bool {
        self.syntax == Syntax::Elixir && self.eat(&close.to_string())
    }

    fn elements(&mut self, close: char, what: &str) -> Parsed<Vec<Term>> {
        let mut items = Vec::new();
        if self.eat(&close.to_string()) {
            return Ok(items);
        }
        loop {
            items.push(self.term()?);
            if self.eat(",") {
                if self.trailing(close) {
                    return Ok(items);
                }
                continue;
            }
            if self.eat(&close.to_string()) {
                return Ok(items);
            }
            self.skip_space();
            return self.error(format!(
                "expected , or {close} in {what}, found {}",
                self.found()
            ));
        }
    }

    /// A list after its `[`: elements, `key: value` pairs (Elixir), and a `| tail`.
    fn list(&mut self, close: char) -> Parsed<Term> {
        let mut items = Vec::new();
        if self.eat("]") {
            return Ok(list(items));
        }
        loop {
            self.skip_space();
            match self.keyword_key()? {
                Some(key) => {
                    let value = self.term()?;
                    items.push(tuple(vec![key, value]));
                }
                None => items.push(self.term()?),
            }
            if self.eat(",") {
                if self.trailing(close) {
                    return Ok(list(items));
                }
                continue;
            }
            if self.eat("|") {
                let tail = self.term()?;
                if !self.eat("]") {
                    self.skip_space();
                    return self.error(format!(
                        "expected ] after a list's tail, found {}",
                        self.found()
                    ));
                }
                return Ok(match tail {
                    Term::List(l) => {
                        items.extend(l.elements);
                        list(items)
                    }
                    tail => Term::from(ImproperList::from((items, tail))),
                });
            }
            if self.eat(&close.to_string()) {
                return Ok(list(items));
            }
            self.skip_space();
            return self.error(format!("expected , or ] in a list, found {}", self.found()));
        }
    }

    /// `key: ` or `"quoted key": ` (Elixir): the key as an atom, and past the colon.
    fn keyword_key(&mut self) -> Parsed<Option<Term>> {
        if self.syntax != Syntax::Elixir {
            return Ok(None);
        }
        let rest = self.rest();
        if rest.starts_with('"') {
            let save = self.pos;
            self.pos += 1;
            let key = self.string('"')?;
            if self.rest().starts_with(": ") || self.rest() == ":" || self.rest().starts_with(":\n")
            {
                self.pos += 1;
                return Ok(Some(atom(&key)));
            }
            self.pos = save;
            return Ok(None);
        }
        let word_len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '@'))
            .unwrap_or(rest.len());
        let mut len = word_len;
        if rest[len..].starts_with(['?', '!']) {
            len += 1;
        }
        let starts_word = rest.starts_with(|c: char| c.is_alphabetic() || c == '_');
        let after = &rest[len..];
        if starts_word && after.starts_with(':') && !after.starts_with("::") {
            let key = &rest[..len];
            self.pos += len + 1;
            return Ok(Some(atom(key)));
        }
        Ok(None)
    }

    /// `%{...}` or `%Name{...}` (Elixir).
    fn elixir_map(&mut self) -> Parsed<Term> {
        self.pos += 1; // %
        let mut entries = Vec::new();
        if self.peek().is_some_and(char::is_uppercase) {
            let module = self.elixir_term()?;
            entries.push((atom("__struct__"), module));
        }
        if !self.rest().starts_with('{') {
            return self.error(format!("expected {{ after %, found {}", self.found()));
        }
        self.pos += 1;
        entries.extend(self.entries()?);
        Ok(map(entries))
    }

    /// Map entries up to `}`: `k => v` and (Elixir) `key: v`.
    fn entries(&mut self) -> Parsed<Vec<(Term, Term)>> {
        let mut entries = Vec::new();
        if self.eat("}") {
            return Ok(entries);
        }
        loop {
            self.skip_space();
            let entry = match self.keyword_key()? {
                Some(key) => (key, self.term()?),
                None => {
                    let key = self.term()?;
                    if !self.eat("=>") {
                        self.skip_space();
                        return self.error(format!("expected => in a map, found {}", self.found()));
                    }
                    (key, self.term()?)
                }
            };
            entries.push(entry);
            if self.eat(",") {
                if self.trailing('}') {
                    return Ok(entries);
                }
                continue;
            }
            if self.eat("}") {
                return Ok(entries);
            }
            self.skip_space();
            return self.error(format!("expected , or }} in a map, found {}", self.found()));
        }
    }

    /// `<<...>>` after its `<<`: segments of integers, floats, strings and binaries with
    /// the bit syntax's type, size, unit and endianness, as the BEAM builds them:
    /// `<<1::16, -1::size(4), 2.5::float-32, "é"::utf16-little, "ab"::binary-size(1)>>`
    /// in Elixir, `<<1:16, -1:4, 2.5:32/float, "é"/utf16-little>>` in Erlang.
    fn bitstring(&mut self) -> Parsed<Term> {
        let mut out = Bits::default();
        if self.eat(">>") {
            return Ok(out.into_term());
        }
        loop {
            self.skip_space();
            let start = self.pos;
            let value = if self.peek() == Some('"') {
                self.pos += 1;
                Segment::Text(self.text('"')?)
            } else {
                Segment::Term(self.term()?)
            };
            let spec = self.bit_spec()?;
            match (value, self.syntax) {
                // In Erlang a string is its characters, each a segment of this type.
                (Segment::Text(s), Syntax::Erlang) => {
                    for c in s.code_points() {
                        let c = Segment::Term(int(i64::from(c)));
                        self.segment(&mut out, start, c, spec)?;
                    }
                }
                (value, _) => self.segment(&mut out, start, value, spec)?,
            }
            if out.len > MAX_BITS {
                return self.error_at(start, "a bitstring of more than 128 MiB");
            }
            if self.eat(",") {
                continue;
            }
            if self.eat(">>") {
                return Ok(out.into_term());
            }
            self.skip_space();
            return self.error(format!(
                "expected , or >> in a binary, found {}",
                self.found()
            ));
        }
    }

    /// A segment's type specifiers: Elixir's `::16`, `::size(4)-unit(8)`,
    /// `::float-little`; Erlang's `:16`, `/float-little-unit:8`.
    fn bit_spec(&mut self) -> Parsed<BitSpec> {
        let mut spec = BitSpec::default();
        let items = match self.syntax {
            Syntax::Elixir => self.eat("::"),
            Syntax::Erlang => {
                if self.eat(":") {
                    spec.size = Some(self.bit_number()?);
                }
                self.eat("/")
            }
        };
        if !items {
            return Ok(spec);
        }
        loop {
            self.skip_space();
            let at = self.pos;
            if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                spec.size = Some(self.bit_number()?);
            } else {
                let word = self.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
                let argument = |p: &mut Self| -> Parsed<u64> {
                    let syntax = p.syntax;
                    match syntax {
                        Syntax::Elixir if p.eat("(") => {
                            let n = p.bit_number()?;
                            if !p.eat(")") {
                                return p.error("expected )");
                            }
                            Ok(n)
                        }
                        Syntax::Erlang if p.eat(":") => p.bit_number(),
                        _ => p.error("expected the number of bits"),
                    }
                };
                match word {
                    "integer" => spec.kind = Some(BitKind::Integer),
                    "float" => spec.kind = Some(BitKind::Float),
                    "binary" | "bytes" => spec.kind = Some(BitKind::Binary),
                    "bitstring" | "bits" => spec.kind = Some(BitKind::Bits),
                    "utf8" => spec.kind = Some(BitKind::Utf8),
                    "utf16" => spec.kind = Some(BitKind::Utf16),
                    "utf32" => spec.kind = Some(BitKind::Utf32),
                    "big" | "signed" | "unsigned" => {}
                    "little" => spec.little = true,
                    "native" => spec.little = cfg!(target_endian = "little"),
                    "size" if self.syntax == Syntax::Elixir => spec.size = Some(argument(self)?),
                    "unit" => {
                        let n = argument(self)?;
                        if !(1..=256).contains(&n) {
                            return self.error_at(at, "a unit from 1 to 256");
                        }
                        spec.unit = Some(n);
                    }
                    _ => {
                        return self.error_at(at, "expected a type, size or unit of the bit syntax")
                    }
                }
            }
            if !self.eat("-") {
                return Ok(spec);
            }
        }
    }

    fn bit_number(&mut self) -> Parsed<u64> {
        self.skip_space();
        let at = self.pos;
        let digits = self.take_while(|c| c.is_ascii_digit() || c == '_');
        match digits.replace('_', "").parse() {
            Ok(n) => Ok(n),
            Err(_) => self.error_at(at, "expected a number of bits"),
        }
    }

    /// Appends one segment to `out`, as the BEAM builds it.
    fn segment(&self, out: &mut Bits, start: usize, value: Segment, spec: BitSpec) -> Parsed<()> {
        let kind = spec.kind.unwrap_or(match &value {
            Segment::Text(_) => BitKind::Binary,
            Segment::Term(Term::Float(_)) => BitKind::Float,
            Segment::Term(Term::Binary(_) | Term::BitBinary(_)) => BitKind::Bits,
            Segment::Term(_) => BitKind::Integer,
        });
        if matches!(kind, BitKind::Integer | BitKind::Float)
            && spec.unit.is_some()
            && spec.size.is_none()
        {
            return self.error_at(start, "a unit without a size for an integer or a float");
        }
        let sized = |default_unit: u64, default_size: Option<u64>| {
            spec.size
                .or(default_size)
                .map(|size| size.saturating_mul(spec.unit.unwrap_or(default_unit)))
        };
        let text_bytes;
        let whole: (&[u8], u64) = match (&value, kind) {
            (Segment::Text(s), BitKind::Binary | BitKind::Bits) => {
                text_bytes = s.bytes();
                (&text_bytes, text_bytes.len() as u64 * 8)
            }
            (Segment::Term(Term::Binary(b)), BitKind::Binary | BitKind::Bits) => {
                (&b.bytes, b.bytes.len() as u64 * 8)
            }
            (Segment::Term(Term::BitBinary(b)), BitKind::Bits | BitKind::Binary) => {
                text_bytes = left_aligned(b);
                let bits = (b.bytes.len() as u64 * 8).saturating_sub(8)
                    + u64::from(b.tail_bits_size.min(8)) * u64::from(!b.bytes.is_empty());
                (&text_bytes, bits)
            }
            (Segment::Text(s), BitKind::Utf8 | BitKind::Utf16 | BitKind::Utf32) => {
                if spec.size.is_some() || spec.unit.is_some() {
                    return self.error_at(start, "a utf segment takes no size or unit");
                }
                let Some(chars) = s.chars() else {
                    return self.error_at(start, INVALID_UTF8_CHARS);
                };
                for c in chars {
                    out.char(c, kind, spec.little);
                }
                return Ok(());
            }
            (Segment::Term(t), BitKind::Utf8 | BitKind::Utf16 | BitKind::Utf32) => {
                let c = match t {
                    Term::FixInteger(i) => u32::try_from(i.value).ok().and_then(char::from_u32),
                    _ => None,
                };
                let Some(c) = c else {
                    return self.error_at(start, "a utf segment of a code point");
                };
                if spec.size.is_some() || spec.unit.is_some() {
                    return self.error_at(start, "a utf segment takes no size or unit");
                }
                out.char(c, kind, spec.little);
                return Ok(());
            }
            (Segment::Term(t), BitKind::Integer) => {
                let value = match t {
                    Term::FixInteger(i) => BigInt::from(i.value),
                    Term::BigInteger(b) => b.value.clone(),
                    _ => return self.error_at(start, "an integer segment of an integer"),
                };
                let bits = sized(1, Some(8)).unwrap_or(8);
                if out.len.saturating_add(bits) > MAX_BITS {
                    return self.error_at(start, "a bitstring of more than 128 MiB");
                }
                if spec.little && bits % 8 != 0 {
                    return self.error_at(start, "a little-endian integer of whole bytes");
                }
                out.integer(&value, bits, spec.little);
                return Ok(());
            }
            (Segment::Term(t), BitKind::Float) => {
                let v = match t {
                    Term::Float(f) => f.value,
                    Term::FixInteger(i) => i.value as f64,
                    _ => return self.error_at(start, "a float segment of a number"),
                };
                let bytes = match sized(1, Some(64)) {
                    Some(64) => v.to_be_bytes().to_vec(),
                    Some(32) if (v as f32).is_finite() => (v as f32).to_be_bytes().to_vec(),
                    Some(32) => return self.error_at(start, "a float beyond 32 bits"),
                    _ => return self.error_at(start, "a float of 32 or 64 bits"),
                };
                let bytes: Vec<u8> = if spec.little {
                    bytes.into_iter().rev().collect()
                } else {
                    bytes
                };
                out.push(&bytes, bytes.len() as u64 * 8);
                return Ok(());
            }
            _ => return self.error_at(start, "a segment that does not fit its type"),
        };
        let (bytes, available) = whole;
        let unit = if kind == BitKind::Binary { 8 } else { 1 };
        let bits = sized(unit, None).unwrap_or(available);
        if bits > available {
            return self.error_at(start, "a size beyond the binary's");
        }
        if kind == BitKind::Binary && bits % 8 != 0 {
            return self.error_at(start, "a binary segment of whole bytes (bits for the rest)");
        }
        if out.len.saturating_add(bits) > MAX_BITS {
            return self.error_at(start, "a bitstring of more than 128 MiB");
        }
        out.push(bytes, bits);
        Ok(())
    }

    /// A string's characters after its opening quote, and past its closing one, as
    /// text (an atom's, a key's): bytes of Elixir's `\xHH` must make UTF-8 with the rest.
    fn string(&mut self, quote: char) -> Parsed<String> {
        let start = self.pos - 1;
        let text = self.text(quote)?;
        String::from_utf8(text.bytes())
            .or_else(|_| self.error_at(start, "text that is valid UTF-8"))
    }

    /// What is quoted, after its opening quote and past its closing one.
    fn text(&mut self, quote: char) -> Parsed<Text> {
        self.delimited(quote, true)
    }

    /// The text up to `close`, after its opening delimiter: with escapes, or (an
    /// upper-case sigil's) raw but for an escaped `close`.
    fn delimited(&mut self, close: char, escapes: bool) -> Parsed<Text> {
        let start = self.pos - 1;
        let mut out = Text::default();
        loop {
            let Some(c) = self.peek() else {
                return self.error_at(start, "a string that never ends");
            };
            self.pos += c.len_utf8();
            match c {
                c if c == close => return Ok(out),
                '\\' if escapes => out.0.push(self.escape()?),
                '\\' if self.peek() == Some(close) => {
                    self.pos += close.len_utf8();
                    out.push(close);
                }
                '#' if self.syntax == Syntax::Elixir && escapes && self.peek() == Some('{') => {
                    return self.error_at(self.pos - 1, "interpolation is code, not a term");
                }
                c => out.push(c),
            }
        }
    }

    /// `first..last` and `first..last//step` after an integer: a `%Range{}` (without a
    /// step, -1 when `last` is below `first`, as Elixir takes it).
    fn range_after(&mut self, first: Term) -> Parsed<Term> {
        let rest = self.rest();
        if first.as_int().is_none() || !rest.starts_with("..") || rest.starts_with("...") {
            return Ok(first);
        }
        let start = self.pos;
        self.pos += 2;
        let last = self.number()?;
        let (Some(from), Some(to)) = (first.as_int(), last.as_int()) else {
            return self.error_at(start, "a range of integers");
        };
        let step = if self.eat("//") {
            let step = self.number()?;
            if matches!(step.as_int(), None | Some(0)) {
                return self.error_at(start, "a range's step: an integer other than 0");
            }
            step
        } else {
            int(if to >= from { 1 } else { -1 })
        };
        Ok(map([
            (atom("__struct__"), atom("Elixir.Range")),
            (atom("first"), first),
            (atom("last"), last),
            (atom("step"), step),
        ]))
    }

    /// Elixir's `?a` and Erlang's `$a`, at the mark: the character's code (`?\n` is 10,
    /// as `"\n"` is a newline).
    fn char_literal(&mut self, mark: char) -> Parsed<Term> {
        self.pos += 1;
        let c = match self.peek() {
            Some('\\') => {
                self.pos += 1;
                self.escape()?.code_point()
            }
            Some(c) => {
                self.pos += c.len_utf8();
                u32::from(c)
            }
            None => return self.error(format!("expected a character after {mark}")),
        };
        Ok(int(i64::from(c)))
    }

    /// A sigil's text, from its opening delimiter (any of Elixir's) past its closing one.
    fn sigil_text(&mut self, escapes: bool) -> Parsed<Text> {
        let close = match self.peek() {
            Some('(') => ')',
            Some('[') => ']',
            Some('{') => '}',
            Some('<') => '>',
            Some(c @ ('"' | '\'' | '|' | '/')) => c,
            _ => return self.error("a sigil's delimiter: ( [ { < \" ' | or /"),
        };
        self.pos += 1;
        self.delimited(close, escapes)
    }

    /// `~D[2026-12-04]`, `~T[12:00:00.123]`, `~N[2026-12-04 12:00:00]` and
    /// `~U[2026-12-04 12:00:00Z]`, after the sigil's letter: the structs of Calendar.ISO.
    fn calendar_sigil(&mut self, letter: char, start: usize) -> Parsed<Term> {
        let text = self.sigil_text(false)?.lossy();
        let bad =
            |p: &Self| p.error_at(start, format!("~{letter}[{text}] is not a valid ~{letter}"));
        let number = |s: &str, len: usize, max: i64| -> Option<i64> {
            let n: i64 = s.parse().ok()?;
            (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) && n <= max).then_some(n)
        };
        let date = |s: &str| -> Option<Vec<(Term, Term)>> {
            let (negative, s) = match s.strip_prefix('-') {
                Some(s) => (true, s),
                None => (false, s),
            };
            let mut parts = s.split('-');
            let year = number(parts.next()?, 4, 9999)?;
            let month = number(parts.next()?, 2, 12).filter(|m| *m >= 1)?;
            let day = number(parts.next()?, 2, 31).filter(|d| *d >= 1)?;
            parts.next().is_none().then(|| {
                vec![
                    (atom("year"), int(if negative { -year } else { year })),
                    (atom("month"), int(month)),
                    (atom("day"), int(day)),
                ]
            })
        };
        let time = |s: &str| -> Option<Vec<(Term, Term)>> {
            let (hms, fraction) = match s.split_once('.') {
                Some((hms, f)) => (hms, Some(f)),
                None => (s, None),
            };
            let mut parts = hms.split(':');
            let hour = number(parts.next()?, 2, 23)?;
            let minute = number(parts.next()?, 2, 59)?;
            let second = number(parts.next()?, 2, 59)?;
            if parts.next().is_some() {
                return None;
            }
            let microsecond = match fraction {
                None => tuple(vec![int(0), int(0)]),
                Some(f) if (1..=6).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => {
                    let us: i64 = format!("{f:0<6}").parse().ok()?;
                    tuple(vec![int(us), int(f.len() as i64)])
                }
                Some(_) => return None,
            };
            Some(vec![
                (atom("hour"), int(hour)),
                (atom("minute"), int(minute)),
                (atom("second"), int(second)),
                (atom("microsecond"), microsecond),
            ])
        };
        let fields = match letter {
            'D' => date(&text).map(|d| ("Date", d)),
            'T' => time(&text).map(|t| ("Time", t)),
            'N' | 'U' => {
                let text = if letter == 'U' {
                    text.strip_suffix('Z')
                } else {
                    Some(&text[..])
                };
                text.and_then(|t| t.split_once([' ', 'T']))
                    .and_then(|(d, t)| {
                        let mut fields = date(d)?;
                        fields.extend(time(t)?);
                        if letter == 'U' {
                            fields.extend([
                                (atom("time_zone"), binary("Etc/UTC")),
                                (atom("zone_abbr"), binary("UTC")),
                                (atom("utc_offset"), int(0)),
                                (atom("std_offset"), int(0)),
                            ]);
                            Some(("DateTime", fields))
                        } else {
                            Some(("NaiveDateTime", fields))
                        }
                    })
            }
            _ => None,
        };
        let Some((module, mut fields)) = fields else {
            return bad(self);
        };
        fields.push((atom("__struct__"), atom(&format!("Elixir.{module}"))));
        fields.push((atom("calendar"), atom("Elixir.Calendar.ISO")));
        Ok(map(fields))
    }

    /// Elixir's sigils of literals: `~s(text)` and `~S` (strings), `~c` and `~C`
    /// (charlists), `~w(a b)` and `~W` (word lists; `a`, `c` or `s` after them for
    /// atoms, charlists or strings), with any of Elixir's delimiters; upper case
    /// without escapes.
    fn sigil(&mut self) -> Parsed<Term> {
        let start = self.pos;
        self.pos += 1;
        let letter = match self.peek() {
            Some(c @ ('s' | 'S' | 'c' | 'C' | 'w' | 'W')) => c,
            Some(c @ ('D' | 'T' | 'N' | 'U')) => {
                self.pos += 1;
                return self.calendar_sigil(c, start);
            }
            _ => {
                return self.error_at(
                    start,
                    "a sigil of a literal: ~s, ~S, ~c, ~C, ~w, ~W, ~D, ~T, ~N or ~U",
                )
            }
        };
        self.pos += 1;
        let text = self.sigil_text(letter.is_lowercase())?;
        let modifiers = self.take_while(|c| c.is_ascii_alphabetic());
        match (letter.to_ascii_lowercase(), modifiers) {
            ('s', "") => Ok(binary(text.bytes())),
            ('c', "") => match text.charlist() {
                Some(chars) => Ok(chars),
                None => self.error_at(start, INVALID_UTF8_CHARS),
            },
            ('w', m @ ("" | "s" | "a" | "c")) => {
                let text = text.lossy();
                let word = |w: &str| match m {
                    "a" => atom(w),
                    "c" => super::charlist(w),
                    _ => binary(w),
                };
                Ok(list(text.split_whitespace().map(word).collect()))
            }
            (_, m) => self.error_at(start, format!("a sigil modifier {m} that this one has not")),
        }
    }

    /// The character of an escape, after its backslash; Elixir's `\xHH`, a byte.
    fn escape(&mut self) -> Parsed<Unit> {
        let Some(c) = self.peek() else {
            return self.error("a string that never ends");
        };
        self.pos += c.len_utf8();
        if c == 'x' && self.syntax == Syntax::Elixir && self.peek() != Some('{') {
            let rest = self.rest();
            let n = rest
                .chars()
                .take(2)
                .take_while(char::is_ascii_hexdigit)
                .count();
            self.pos += n;
            return match u8::from_str_radix(&rest[..n], 16) {
                Ok(byte) => Ok(Unit::Byte(byte)),
                Err(_) => self.error("\\x and two hex digits"),
            };
        }
        Ok(Unit::Char(match c {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            's' => ' ',
            'e' => '\u{1b}',
            'v' => '\u{b}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'a' => '\u{7}',
            'd' => '\u{7f}',
            '0' if self.syntax == Syntax::Elixir => '\0',
            // Erlang's control characters: `\^A` (or `\^a`) is 1, and `\^C` is any
            // character's code `band 31`, as erl_scan takes it (`\^@` is 0, `\^[` 27,
            // a quote after `\^` 2, not the end of the string).
            '^' if self.syntax == Syntax::Erlang => match self.peek() {
                Some(c) => {
                    self.pos += c.len_utf8();
                    char::from((u32::from(c) & 31) as u8)
                }
                None => '^',
            },
            'x' => self.hex_escape('x', 2)?,
            'u' if self.syntax == Syntax::Elixir => self.hex_escape('u', 4)?,
            '0'..='7' if self.syntax == Syntax::Erlang => {
                let start = self.pos - 1;
                let n = self
                    .rest()
                    .chars()
                    .take(2)
                    .take_while(|c| ('0'..='7').contains(c))
                    .count();
                self.pos += n;
                self.code_point(&self.text[start..self.pos], 8)?
            }
            c => c,
        }))
    }

    /// `\x{1F600}` or `\xHH` (up to `digits` hex digits without braces; `\u` the same
    /// with 4), after the letter.
    fn hex_escape(&mut self, letter: char, digits: usize) -> Parsed<char> {
        let hex = if self.peek() == Some('{') {
            self.pos += 1;
            let h = self.take_while(|c| c.is_ascii_hexdigit());
            if !self.eat("}") {
                return self.error(format!("expected }} after \\{letter}{{..."));
            }
            h
        } else {
            let rest = self.rest();
            let n = rest
                .chars()
                .take(digits)
                .take_while(char::is_ascii_hexdigit)
                .count();
            self.pos += n;
            &rest[..n]
        };
        self.code_point(hex, 16)
    }

    fn code_point(&self, digits: &str, radix: u32) -> Parsed<char> {
        u32::from_str_radix(digits, radix)
            .ok()
            .and_then(char::from_u32)
            .map_or_else(|| self.error(format!("{digits:?} is not a character")), Ok)
    }

    fn number(&mut self) -> Parsed<Term> {
        let start = self.pos;
        let negative = match self.peek() {
            Some('-') => {
                self.pos += 1;
                true
            }
            Some('+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        self.skip_space();
        let digits_start = self.pos;
        let whole = self.take_while(|c| c.is_ascii_digit() || c == '_');
        if whole.is_empty() {
            return self.error_at(start, "expected a number");
        }
        // Erlang's `16#ff`.
        if self.syntax == Syntax::Erlang && self.peek() == Some('#') {
            let radix: u32 = whole.parse().unwrap_or(0);
            self.pos += 1;
            let digits = self.take_while(|c| c.is_ascii_alphanumeric());
            if !(2..=36).contains(&radix) {
                return self.error_at(start, "a radix from 2 to 36");
            }
            return self.integer(start, digits, radix, negative);
        }
        // Elixir's `0x1F`, `0o17` and `0b101`.
        if let ("0", Some(letter @ ('x' | 'o' | 'b'))) = (whole, self.peek()) {
            if self.syntax == Syntax::Elixir {
                self.pos += 1;
                let radix = match letter {
                    'x' => 16,
                    'o' => 8,
                    _ => 2,
                };
                let digits = self.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
                return self.integer(start, digits, radix, negative);
            }
        }
        let rest = self.rest();
        let is_float = rest.starts_with('.') && rest[1..].starts_with(|c: char| c.is_ascii_digit());
        if !is_float {
            return self.integer(start, whole, 10, negative);
        }
        self.pos += 1;
        self.take_while(|c| c.is_ascii_digit() || c == '_');
        if self.rest().starts_with(['e', 'E']) {
            let save = self.pos;
            self.pos += 1;
            if self.rest().starts_with(['+', '-']) {
                self.pos += 1;
            }
            if self.take_while(|c| c.is_ascii_digit()).is_empty() {
                self.pos = save;
            }
        }
        let text: String = self.text[digits_start..self.pos]
            .chars()
            .filter(|&c| c != '_')
            .collect();
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Term::Float(Float {
                value: if negative { -v } else { v },
            })),
            _ => self.error_at(start, "a float out of range"),
        }
    }

    /// An integer of `digits` (underscores between them allowed) in `radix`, of any
    /// size, as the BEAM's integers are.
    fn integer(&self, start: usize, digits: &str, radix: u32, negative: bool) -> Parsed<Term> {
        let digits: String = digits.chars().filter(|&c| c != '_').collect();
        let value = match BigInt::parse_bytes(digits.as_bytes(), radix) {
            Some(v) if !digits.starts_with(['+', '-']) => v,
            _ => return self.error_at(start, format!("an integer in base {radix}")),
        };
        let value = if negative { -value } else { value };
        Ok(match i64::try_from(&value) {
            Ok(v) => int(v),
            Err(_) => Term::from(BigInteger { value }),
        })
    }
}

/// The largest bitstring a literal may build: 128 MiB.
const MAX_BITS: u64 = 128 * 1024 * 1024 * 8;

/// Elixir refuses characters made of `\x` bytes that are no UTF-8.
const INVALID_UTF8_CHARS: &str =
    "characters of \\x bytes that make no UTF-8 (Elixir raises UnicodeConversionError)";

/// One unit of quoted text: a character, or a byte (Elixir's `\xHH`, which is one
/// byte of a string however it reads as UTF-8).
#[derive(Debug, Clone, Copy)]
enum Unit {
    Char(char),
    Byte(u8),
}

impl Unit {
    /// As a charlist has it: a byte is the code point of its value.
    fn code_point(self) -> u32 {
        match self {
            Unit::Char(c) => u32::from(c),
            Unit::Byte(b) => u32::from(b),
        }
    }
}

/// Quoted text, as read.
#[derive(Debug, Default)]
struct Text(Vec<Unit>);

impl Text {
    fn push(&mut self, c: char) {
        self.0.push(Unit::Char(c));
    }

    /// As a string has it: the characters in UTF-8, the bytes as they are.
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len());
        for unit in &self.0 {
            match unit {
                Unit::Char(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                Unit::Byte(b) => out.push(*b),
            }
        }
        out
    }

    /// As Erlang has it: each character its code point.
    fn code_points(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().map(|u| u.code_point())
    }

    /// As Elixir has it: the characters of the text's bytes read as UTF-8 (`'\xc3\xa9'`
    /// is `[233]`, as `:unicode.characters_to_list/1` makes it); `None` when bytes
    /// written with `\x` make no UTF-8, which Elixir refuses
    /// (`UnicodeConversionError`).
    fn chars(&self) -> Option<Vec<char>> {
        if !self.0.iter().any(|u| matches!(u, Unit::Byte(_))) {
            return Some(
                self.0
                    .iter()
                    .filter_map(|u| match u {
                        Unit::Char(c) => Some(*c),
                        Unit::Byte(_) => None,
                    })
                    .collect(),
            );
        }
        String::from_utf8(self.bytes())
            .ok()
            .map(|s| s.chars().collect())
    }

    /// A charlist, as Elixir reads `'...'` and `~c"..."`.
    fn charlist(&self) -> Option<Term> {
        let chars = self.chars()?;
        Some(list(
            chars
                .into_iter()
                .map(|c| int(i64::from(u32::from(c))))
                .collect(),
        ))
    }

    /// As text, a byte that makes no UTF-8 replaced.
    fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

/// A segment's value before its type is applied.
enum Segment {
    Text(Text),
    Term(Term),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BitKind {
    Integer,
    Float,
    Binary,
    Bits,
    Utf8,
    Utf16,
    Utf32,
}

/// What follows a segment's value: its type, size, unit and endianness.
#[derive(Clone, Copy, Default)]
struct BitSpec {
    kind: Option<BitKind>,
    size: Option<u64>,
    unit: Option<u64>,
    little: bool,
}

/// A bitstring being built, bits first to last, the last byte's from its high bit.
#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
    len: u64,
}

impl Bits {
    /// The first `bits` bits of `from`.
    fn push(&mut self, from: &[u8], bits: u64) {
        let whole = (bits / 8) as usize;
        let used = (self.len % 8) as u32;
        if used == 0 {
            self.bytes.extend_from_slice(&from[..whole]);
        } else {
            // Each whole byte straddles the last byte's free bits and a new byte.
            self.bytes.reserve(whole);
            for &b in &from[..whole] {
                *self.bytes.last_mut().expect("a partial last byte") |= b >> used;
                self.bytes.push(b << (8 - used));
            }
        }
        self.len += whole as u64 * 8;
        // The bits of a last partial byte, one by one (fewer than 8).
        for i in 0..bits % 8 {
            let bit = from[whole] >> (7 - i) & 1;
            if self.len.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if bit == 1 {
                *self.bytes.last_mut().expect("pushed") |= 1 << (7 - self.len % 8);
            }
            self.len += 1;
        }
    }

    /// `bits` bits each of `fill`'s pattern (all ones or all zeros): up to a byte
    /// boundary, then whole bytes a block at a time, then the rest.
    fn fill(&mut self, fill: u8, bits: u64) {
        let lead = ((8 - self.len % 8) % 8).min(bits);
        self.push(&[fill], lead);
        let piece = [fill; 4096];
        let mut whole = ((bits - lead) / 8) as usize;
        self.bytes.reserve(whole);
        while whole > 0 {
            let n = whole.min(piece.len());
            self.bytes.extend_from_slice(&piece[..n]);
            whole -= n;
        }
        self.len += (bits - lead) / 8 * 8;
        self.push(&[fill], (bits - lead) % 8);
    }

    /// `value` in `bits` bits (two's complement, its low ones), big- or little-endian.
    fn integer(&mut self, value: &BigInt, bits: u64, little: bool) {
        let mut bytes = value.to_signed_bytes_le();
        let fill = if value.sign() == num_bigint::Sign::Minus {
            0xff
        } else {
            0
        };
        // The value's low bytes that the width holds (in a width wider than the value,
        // all of them, the rest being its sign repeated).
        bytes.truncate(bits.div_ceil(8) as usize);
        let own = (bytes.len() as u64 * 8).min(bits);
        if little {
            // Whole bytes (the caller checked): low ones first, then the sign.
            self.push(&bytes, own);
            self.fill(fill, bits - own);
            return;
        }
        self.fill(fill, bits - own);
        bytes.reverse();
        // The top byte gives only its low `own % 8` bits where the width cuts into it.
        let cut = own % 8;
        if cut != 0 {
            self.push(&[bytes[0] << (8 - cut)], cut);
            bytes.remove(0);
        }
        self.push(&bytes, own - cut);
    }

    fn char(&mut self, c: char, kind: BitKind, little: bool) {
        let units = |bytes: &mut Vec<u8>, unit: &[u8]| {
            if little {
                bytes.extend(unit.iter().rev());
            } else {
                bytes.extend_from_slice(unit);
            }
        };
        let mut bytes = Vec::new();
        match kind {
            BitKind::Utf16 => {
                for u in c.encode_utf16(&mut [0; 2]) {
                    units(&mut bytes, &u.to_be_bytes());
                }
            }
            BitKind::Utf32 => units(&mut bytes, &u32::from(c).to_be_bytes()),
            _ => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
        self.push(&bytes, bytes.len() as u64 * 8);
    }

    fn into_term(mut self) -> Term {
        match (self.len % 8) as u8 {
            0 => binary(self.bytes),
            tail => {
                // A BitBinary keeps its last byte's bits in its low ones.
                if let Some(last) = self.bytes.last_mut() {
                    *last >>= 8 - tail;
                }
                Term::from(BitBinary::from((self.bytes, tail)))
            }
        }
    }
}

/// A bitstring's bytes with its last byte's bits moved up to the high ones.
fn left_aligned(b: &BitBinary) -> Vec<u8> {
    let mut bytes = b.bytes.clone();
    if let Some(last) = bytes.last_mut() {
        *last <<= 8 - b.tail_bits_size.clamp(1, 8);
    }
    bytes
}

/// What a node prints of a value that cannot be written back (`#Reference<...>`,
/// `#Port<...>`, `#Function<...>`), said as the error.
fn unreadable(text: &str) -> Option<&'static str> {
    let kinds = [
    ("#Reference<", "a reference cannot be written as a term: only its node makes one"),
    ("#Ref<", "a reference cannot be written as a term: only its node makes one"),
    ("#Port<", "a port cannot be written as a term: only its node opens one"),
    ("#Function<", "an anonymous function cannot be written as a term (an external one can: &Module.function/arity)"),
    ("#Fun<", "an anonymous function cannot be written as a term (an external one can: fun module:function/arity)"),
];
    kinds
        .iter()
        .find(|(opening, _)| text.starts_with(opening))
        .map(|(_, what)| *what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::{Elixir, Erlang};

    #[test]
    fn what_elixir_prints_parses_back() {
        for text in [
            "42",
            "-7",
            "1.5",
            "1.0e20",
            ":ok",
            ":\"hello world\"",
            "Chat.Message",
            "nil",
            "true",
            ":foo?",
            ":ok@host",
            ":+",
            r#""h\"é\n""#,
            "<<255, 0>>",
            "<<1, 2::size(3)>>",
            r#""""#,
            "[]",
            "{}",
            "[1 | 2]",
            r#"[a: 1, b: "x"]"#,
            r#"[{:a, 1}, {"b", 2}]"#,
            "%{a: [1, 2]}",
            r#"%{"k" => {:v}}"#,
            "%{1 => 2}",
            r#"{:echoed, "hello", [1, [2]], %{}}"#,
            r#"~c"abc""#,
            r#"%URI{host: "x"}"#,
            r#"%{"hello world": 1}"#,
            "18446744073709551615",
            "-123456789012345678901234567890",
            "&Enum.sum/1",
            "[&:lists.reverse/2, &String.valid?/1, &MyApp.Worker.\"do it\"/0]",
        ] {
            let t = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(Elixir(&t).to_string(), text);
        }
        assert_eq!(
            parse("& Enum.sum / 1").unwrap(),
            crate::term!(&Enum.sum / 1),
        );
        assert_eq!(
            parse_erlang("[fun lists:sum/1, fun 'Elixir.Enum':'sum'/1]").unwrap(),
            crate::term!([&:lists.sum/1, &Enum.sum/1]),
        );
        assert_eq!(
            Erlang(&crate::term!(&:lists.sum/1)).to_string(),
            "fun lists:sum/1"
        );
        // A trailing comma, as Elixir reads it (Erlang does not).
        assert_eq!(
            parse("{[1, 2,], {1,}, %{a: 1,}, [a: 1,]}").unwrap(),
            parse("{[1, 2], {1}, %{a: 1}, [a: 1]}").unwrap()
        );
        assert!(parse_erlang("[1,]").is_err());
        // UTF-8 as the shell writes it, read.
        let text = crate::term::binary("héllo");
        assert_eq!(parse_erlang(r#"<<"héllo"/utf8>>"#).unwrap(), text);
        for (text, error) in [
            (
                "&Enum/1",
                "1:1: expected a function as &Module.function/arity",
            ),
            (
                "&Enum.sum",
                "1:1: expected a function as &Module.function/arity",
            ),
            (
                "&1.sum/1",
                "1:1: expected a function as &Module.function/arity",
            ),
            ("&Enum.sum/256", "1:1: a function's arity is 0 to 255"),
        ] {
            assert_eq!(parse(text).unwrap_err().to_string(), error, "{text}");
        }
        assert_eq!(
            parse_erlang("fun lists/1").unwrap_err().to_string(),
            "1:1: expected a function as fun module:function/arity"
        );
        assert_eq!(parse("'abc'").unwrap(), parse("~c\"abc\"").unwrap());
        assert_eq!(parse("[1, 2 | [3]]").unwrap(), parse("[1, 2, 3]").unwrap());
        assert_eq!(parse("?a").unwrap(), int(97));
        // The bit syntax, as Elixir 1.14 and OTP 25 build each of these.
        for (text, elixir) in [
            ("<<256>>", "<<0>>"),
            ("<<1::size(3), 2>>", "<<32, 2::size(3)>>"),
            ("<<1::16, -1::size(4)>>", "<<0, 1, 15::size(4)>>"),
            ("<<-1::size(12)>>", "<<255, 15::size(4)>>"),
            ("<<-3::size(7), 255::size(9)>>", "<<250, 255>>"),
            (
                "<<-2::little-size(16), 1::little-32>>",
                "<<254, 255, 1, 0, 0, 0>>",
            ),
            (r#"<<"é"::utf16, "é"::utf16-little>>"#, "<<0, 233, 233, 0>>"),
            (r#"<<"a😀"::utf32>>"#, "<<0, 0, 0, 97, 0, 1, 246, 0>>"),
            ("<<0x1F600::utf8>>", r#""😀""#),
            (
                "<<2.5::float, 2.5::float-32>>",
                "<<64, 4, 0, 0, 0, 0, 0, 0, 64, 32, 0, 0>>",
            ),
            (
                "<<2.5::float-little-size(64)>>",
                "<<0, 0, 0, 0, 0, 0, 4, 64>>",
            ),
            ("<< <<1, 2>>::binary, 3>>", "<<1, 2, 3>>"),
            ("<<1::size(2)-unit(8)>>", "<<0, 1>>"),
            (
                "<<123456789012345678901234567890::size(100)>>",
                "<<24, 238, 144, 255, 108, 55, 62, 14, 228, 227, 240, 173, 2::size(4)>>",
            ),
            ("<<1::1, 0::1, 1::1>>", "<<5::size(3)>>"),
            (r#"<<3::size(2), "abc">>"#, "<<216, 88, 152, 3::size(2)>>"),
            ("<<1::integer-signed-big-size(24)>>", "<<0, 0, 1>>"),
            ("<<0::size(0)>>", r#""""#),
        ] {
            let t = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(Elixir(&t).to_string(), elixir, "{text}");
        }
        // Ranges and the calendar sigils, as Elixir reads and prints them.
        for (text, elixir) in [
            ("1..3", "1..3"),
            ("3..1", "3..1//-1"),
            ("-3..-1", "-3..-1"),
            ("10..1//-3", "10..1//-3"),
            ("[1..2, 5..6]", "[1..2, 5..6]"),
            ("~D[-0012-01-02]", "~D[-0012-01-02]"),
            ("~T[12:00:00.123]", "~T[12:00:00.123]"),
            ("~N[2026-12-04T12:00:00]", "~N[2026-12-04 12:00:00]"),
            (
                "~U[2026-12-04 12:00:00.000001Z]",
                "~U[2026-12-04 12:00:00.000001Z]",
            ),
        ] {
            let t = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(Elixir(&t).to_string(), elixir, "{text}");
        }
        for not in [
            "1..a",
            "1..3//0",
            "~D[2026-13-01]",
            "~T[24:00:00]",
            "~U[2026-12-04 12:00:00]",
        ] {
            assert!(parse(not).is_err(), "{not}");
        }
        // Sigils and quoted atoms as Elixir reads them.
        for (text, elixir) in [
            (r#"~s(a "b")"#, r#""a \"b\"""#),
            (r"~S(a\nb\))", r#""a\\nb)""#),
            (r"~s[a\n]", r#""a\n""#),
            ("~c{ab}", r#"~c"ab""#),
            ("~C<ab>", r#"~c"ab""#),
            ("~w(a b  c)a", "[:a, :b, :c]"),
            ("~w|a b|", r#"["a", "b"]"#),
            ("~W/a b/c", r#"[~c"a", ~c"b"]"#),
            (":'single'", ":single"),
        ] {
            let t = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(Elixir(&t).to_string(), elixir, "{text}");
        }
        for not in ["~r/x/", "~s", "~s(x", "~w(a)x", "'a#{1}'", "~s(#{1})"] {
            assert!(parse(not).is_err(), "{not}");
        }
        // As Elixir reads them: 31, -8, 15, 5, 2 ** 64.
        assert_eq!(
            parse("[0x1F, -0b1000, 0o17, 0b1_01, 0x1_0000_0000_0000_0000]").unwrap(),
            list(vec![
                int(31),
                int(-8),
                int(15),
                int(5),
                Term::from(BigInteger::from(1u128 << 64))
            ])
        );
        assert!(parse("0x").is_err() && parse("0b2").is_err() && parse("0x-1").is_err());
        // As Elixir 1.14 reads them: [10, 32, 92, 27, 0, 233, 127, 7, 9, 34].
        assert_eq!(
            parse(r#"[?\n, ?\s, ?\\, ?\e, ?\0, ?é, ?\d, ?\a, ?\t, ?\"]"#).unwrap(),
            list([10, 32, 92, 27, 0, 233, 127, 7, 9, 34].map(int).to_vec())
        );
        assert_eq!(
            parse(r#""\x41\x{1F600}\u00e9\u{e9}""#).unwrap(),
            binary("A😀éé")
        );
        // `\xHH` is a byte of a string, as Elixir reads it (`"\xc3\xa9"` is "é");
        // a charlist and a utf segment are the characters those bytes make as UTF-8,
        // as Elixir 1.14 and 1.20 read them, and bytes that make none are refused.
        assert_eq!(parse(r#""\xc3\xa9""#).unwrap(), binary("é"));
        assert_eq!(parse(r#""\xff""#).unwrap(), binary([255u8].to_vec()));
        assert_eq!(
            parse(r#"[~s(a\xffb), <<"\xff", 1>>, '\xc3\xa9', ~c(a\x{e9}\xc3\xa9)]"#).unwrap(),
            list(vec![
                binary(b"a\xffb".to_vec()),
                binary([255u8, 1].to_vec()),
                list(vec![int(233)]),
                list(vec![int(97), int(233), int(233)]),
            ])
        );
        assert_eq!(
            parse(r#"{<<"\xc3\xa9"::utf8>>, <<"\xc3\xa9"::utf16>>}"#).unwrap(),
            tuple(vec![
                binary([195u8, 169].to_vec()),
                binary([0u8, 233].to_vec())
            ])
        );
        for refused in [r#"'\xff'"#, r#"~c(\xc3)"#, r#"<<"\xff"::utf8>>"#] {
            let e = parse(refused).unwrap_err();
            assert!(
                e.message.contains("UnicodeConversionError"),
                "{refused}: {e:?}"
            );
        }
        assert!(parse(r#":"\xff""#).is_err() && parse(r#""\xg""#).is_err());
        assert_eq!(
            parse_erlang(r#"{"\^A\^z", <<"\xff">>}"#).unwrap(),
            tuple(vec![list(vec![int(1), int(26)]), binary([255u8].to_vec())])
        );
        // Any character after `\^`, as erl_scan: `\^1` 17, `\^@` 0, `\^[` 27, and a
        // quote, which then does not end the string (2).
        assert_eq!(
            parse_erlang(r#""\^1\^@\^[\^"x""#).unwrap(),
            list([17, 0, 27, 2, 120].map(int).to_vec())
        );
        assert_eq!(
            parse(r#""\x{41""#).unwrap_err().message,
            "expected } after \\x{..."
        );
        assert_eq!(
            parse_erlang(r#""\101\x41""#).unwrap(),
            crate::term::charlist("AA")
        );
        assert_eq!(parse("1_000").unwrap(), int(1000));
        assert_eq!(parse(":\"Elixir.Enum\"").unwrap(), parse("Enum").unwrap());
        assert_eq!(
            parse(" { :ok , 1 } # done").unwrap(),
            parse("{:ok, 1}").unwrap()
        );
    }

    #[test]
    fn what_erlang_prints_parses_back() {
        for text in [
            "42",
            "ok",
            "'hello world'",
            "'Elixir.Chat'",
            "{ok,<<\"hi\">>}",
            "[1,2|3]",
            "#{a => 1}",
            "\"abc\"",
            "<<1,2:3>>",
            "[]",
        ] {
            let t = parse_erlang(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(Erlang(&t).to_string(), text);
        }
        assert_eq!(parse_erlang("$a").unwrap(), int(97));
        assert_eq!(parse_erlang("16#ff.").unwrap(), int(255));
        for (text, erlang) in [
            ("<<1:16/little, -1:4>>", "<<1,0,15:4>>"),
            ("<<\"ab\":16, \"é\"/utf16-little>>", "<<0,97,0,98,233,0>>"),
            ("<<2.5:32/float-little, 1:2/unit:8>>", "<<0,0,32,64,0,1>>"),
            ("<<$a, \"bc\", 1:4>>", "<<97,98,99,1:4>>"),
        ] {
            let t = parse_erlang(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(Erlang(&t).to_string(), erlang, "{text}");
        }
        assert_eq!(
            parse_erlang("-16#1ffffffffffffffff").unwrap(),
            Term::from(BigInteger::from(-(1i128 << 65) + 1))
        );
        assert_eq!(parse_erlang("<<\"é\"/utf8>>").unwrap(), binary("é"));
    }

    #[test]
    fn bad_text_says_where() {
        let e = parse("{:ok, [1, 2}").unwrap_err();
        assert_eq!((e.line, e.column), (1, 12));
        assert_eq!(e.message, "expected , or ] in a list, found '}'");
        let e = parse("{:ok,\n  x}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "2:3: x is a variable, not a term (an atom is :x)"
        );
        assert_eq!(
            parse("\"open").unwrap_err().to_string(),
            "1:1: a string that never ends"
        );
        assert_eq!(
            parse("1 2").unwrap_err().to_string(),
            "1:3: expected the end, found '2'"
        );
        assert!(parse("\"#{x}\"")
            .unwrap_err()
            .message
            .contains("interpolation"));
        assert!(parse("<<1::utf8-size(8)>>").is_err());
        assert!(parse("<<1::nope>>").is_err());
        assert!(parse("<<1::unit(8)>>").is_err());
        assert!(parse("<<1::size(1_073_741_825)-unit(8)>>").is_err());
        assert!(parse("%{a => }").is_err());
        assert!(parse_erlang("X").unwrap_err().message.contains("variable"));
        let deep = "[".repeat(10_000);
        assert!(parse(&deep).unwrap_err().message.contains("deeper"));
        for garbage in ["", ":", "%", "<<", "~c", "-", "{,}", "[a:]", "\u{0}"] {
            assert!(parse(garbage).is_err(), "{garbage:?}");
        }
    }

    /// Token soup of the bit syntax and sigils: every text is a term or an error,
    /// never a panic.
    /// The bitstring builder against a model that sets one bit at a time: bytes at any
    /// offset, integers of any width either way round, sign fills (the builder works a
    /// byte or a block at a time).
    #[test]
    fn bits_are_built_as_one_bit_at_a_time_would() {
        fn model_bit(bits: &mut Vec<bool>, from: &[u8], n: u64) {
            bits.extend((0..n).map(|i| from[(i / 8) as usize] >> (7 - i % 8) & 1 == 1));
        }
        fn model_integer(bits: &mut Vec<bool>, value: i64, n: u64, little: bool) {
            let bit = |i: u64| {
                if i >= 64 {
                    value < 0
                } else {
                    value >> i & 1 == 1
                }
            };
            if little {
                for byte in 0..n / 8 {
                    bits.extend((0..8).rev().map(|b| bit(byte * 8 + b)));
                }
            } else {
                bits.extend((0..n).rev().map(bit));
            }
        }
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..3_000 {
            let mut built = Bits::default();
            let mut model = Vec::new();
            for _ in 0..1 + next(4) {
                if next(2) == 0 {
                    let from: Vec<u8> = (0..1 + next(40)).map(|_| next(256) as u8).collect();
                    let n = next(from.len() as u64 * 8 + 1);
                    built.push(&from, n);
                    model_bit(&mut model, &from, n);
                } else {
                    let value = (next(u64::MAX) as i64) >> next(64);
                    let little = next(3) == 0;
                    let n = if little { 8 * next(20) } else { next(160) };
                    built.integer(&BigInt::from(value), n, little);
                    model_integer(&mut model, value, n, little);
                }
            }
            let want: Vec<u8> = model
                .chunks(8)
                .map(|c| {
                    c.iter()
                        .enumerate()
                        .fold(0, |b, (i, &on)| b | u8::from(on) << (7 - i))
                })
                .collect();
            assert_eq!(built.len, model.len() as u64);
            assert_eq!(built.bytes, want, "{model:?}");
        }
    }

    #[test]
    fn random_bit_syntax_and_sigils_never_panic() {
        let tokens = [
            "<<",
            ">>",
            "<< ",
            ",",
            "::",
            ":",
            "/",
            "-",
            "1",
            "-1",
            "255",
            "0",
            "7",
            "16",
            "64",
            "2.5",
            "0x1F600",
            "\"é\"",
            "\"ab\"",
            "size(",
            "unit(",
            ")",
            "(3)",
            "integer",
            "float",
            "binary",
            "bits",
            "bytes",
            "utf8",
            "utf16",
            "utf32",
            "little",
            "big",
            "signed",
            "unit:",
            "~s(",
            "~W[",
            "~c",
            "]",
            "a",
            "'",
            "$a",
            "?",
            "\\",
            "123456789012345678901234567890",
            "<<1::size(3)>>",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..20_000 {
            let len = 1 + next(12);
            let text: String = (0..len).map(|_| tokens[next(tokens.len())]).collect();
            let _ = parse(&text);
            let _ = parse_erlang(&text);
        }
    }
}
