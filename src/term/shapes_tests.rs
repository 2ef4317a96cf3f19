//! Display, `term!`, `IntoTerm` and serde; what a real node prints and encodes is checked
//! against these in tests/terms.rs.

use super::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

fn ex(t: &Term) -> String {
    Elixir(t).to_string()
}

fn erl(t: &Term) -> String {
    Erlang(t).to_string()
}

fn float(x: f64) -> Term {
    Term::Float(Float { value: x })
}

#[test]
fn floats_as_each_language_prints_them() {
    // inspect/1 || io_lib:format("~p"), from OTP 25 / Elixir 1.14 and OTP 29 / 1.20.
    for (x, elixir, erlang) in [
        (1.5, "1.5", "1.5"),
        (1.0e20, "1.0e20", "1.0e20"),
        (1.0e-5, "1.0e-5", "1.0e-5"),
        (0.0001, "0.0001", "0.0001"),
        (123456789.0, "123456789.0", "123456789.0"),
        (1.0e15, "1000000000000000.0", "1.0e15"),
        (1.0e16, "1.0e16", "1.0e16"),
        (-0.0, "-0.0", "-0.0"),
        (1.0 / 3.0, "0.3333333333333333", "0.3333333333333333"),
        (2.0e-300, "2.0e-300", "2.0e-300"),
        (0.0, "0.0", "0.0"),
    ] {
        assert_eq!(ex(&float(x)), elixir, "{x}");
        assert_eq!(erl(&float(x)), erlang, "{x}");
    }
}

#[test]
fn atoms_as_each_language_quotes_them() {
    for (name, elixir, erlang) in [
        ("ok", ":ok", "ok"),
        ("hello world", ":\"hello world\"", "'hello world'"),
        ("Elixir", "Elixir", "'Elixir'"),
        (
            "Elixir.Chat.Message",
            "Chat.Message",
            "'Elixir.Chat.Message'",
        ),
        ("Elixir.chat", ":\"Elixir.chat\"", "'Elixir.chat'"),
        ("nil", "nil", "nil"),
        ("true", "true", "true"),
        ("foo?", ":foo?", "'foo?'"),
        ("a-b", ":\"a-b\"", "'a-b'"),
        ("@x", ":\"@x\"", "'@x'"),
        ("ok@host", ":ok@host", "ok@host"),
        ("+", ":+", "'+'"),
        ("9a", ":\"9a\"", "'9a'"),
        ("", ":\"\"", "''"),
        ("'q", ":\"'q\"", "'\\'q'"),
        ("receive", ":receive", "'receive'"),
        // As Elixir 1.14 and 1.20 inspect them: bare, but for a dot.
        ("Foo", ":Foo", "'Foo'"),
        ("FOO", ":FOO", "'FOO'"),
        ("Ab@c", ":Ab@c", "'Ab@c'"),
        ("A?", ":A?", "'A?'"),
        ("Foo.Bar", ":\"Foo.Bar\"", "'Foo.Bar'"),
        ("Elixir.Elixir", "Elixir.Elixir", "'Elixir.Elixir'"),
        (
            "Elixir.Elixir.Foo",
            "Elixir.Elixir.Foo",
            "'Elixir.Elixir.Foo'",
        ),
    ] {
        assert_eq!(ex(&atom(name)), elixir, "{name}");
        assert_eq!(erl(&atom(name)), erlang, "{name}");
        // What is printed reads back.
        assert_eq!(parse(elixir), Ok(atom(name)), "{name}");
        assert_eq!(parse_erlang(erlang), Ok(atom(name)), "{name}");
    }
}

#[test]
fn containers_as_each_language_prints_them() {
    let mixed = map([(atom("a"), int(1)), (binary("b"), int(2))]);
    let atoms = map([(atom("b"), int(2)), (atom("a"), int(1))]);
    let keyword = list(vec![
        tuple(vec![atom("a"), int(1)]),
        tuple(vec![atom("b"), int(2)]),
    ]);
    let not_keyword = list(vec![
        tuple(vec![atom("a"), int(1)]),
        tuple(vec![binary("b"), int(2)]),
    ]);
    let structure = map([
        (atom("__struct__"), atom("Elixir.Chat.Message")),
        (atom("a"), int(1)),
    ]);
    let improper = Term::from(ImproperList::from((vec![int(1)], int(2))));
    let bits = Term::from(BitBinary::from((vec![1, 2], 3)));
    for (t, elixir, erlang) in [
        (
            mixed,
            r#"%{:a => 1, "b" => 2}"#,
            r#"#{a => 1,<<"b">> => 2}"#,
        ),
        (atoms, "%{a: 1, b: 2}", "#{a => 1,b => 2}"),
        (keyword, "[a: 1, b: 2]", "[{a,1},{b,2}]"),
        (
            not_keyword,
            r#"[{:a, 1}, {"b", 2}]"#,
            r#"[{a,1},{<<"b">>,2}]"#,
        ),
        (charlist("abc"), r#"~c"abc""#, r#""abc""#),
        (charlist("a\nb"), r#"~c"a\nb""#, r#""a\nb""#),
        (improper, "[1 | 2]", "[1|2]"),
        (bits, "<<1, 2::size(3)>>", "<<1,2:3>>"),
        (
            binary("h\"é\n"),
            r#""h\"é\n""#,
            "<<\"h\\\"\u{c3}\u{a9}\\n\">>",
        ),
        (binary(vec![255]), "<<255>>", "<<\"\u{ff}\">>"),
        (binary(vec![0]), "<<0>>", "<<0>>"),
        (binary(""), r#""""#, "<<>>"),
        (binary("#{x}"), r##""\#{x}""##, r##"<<"#{x}">>"##),
        (nil(), "[]", "[]"),
        (tuple(vec![]), "{}", "{}"),
        (
            structure,
            "%Chat.Message{a: 1}",
            "#{'__struct__' => 'Elixir.Chat.Message',a => 1}",
        ),
        (int(-5), "-5", "-5"),
        (
            map([
                (atom("__struct__"), atom("Elixir.RuntimeError")),
                (atom("__exception__"), atom("true")),
                (atom("message"), binary("boom")),
            ]),
            r#"%RuntimeError{message: "boom"}"#,
            r#"#{'__exception__' => true,'__struct__' => 'Elixir.RuntimeError',message => <<"boom">>}"#,
        ),
        (
            list(vec![int(1), list(vec![int(2)])]),
            "[1, [2]]",
            "[1,[2]]",
        ),
        (
            map([(atom("hello world"), int(1))]),
            r#"%{"hello world": 1}"#,
            "#{'hello world' => 1}",
        ),
    ] {
        assert_eq!(ex(&t), elixir);
        assert_eq!(erl(&t), erlang);
    }
}

#[test]
fn pids_and_references_name_their_node_unless_it_is_the_local_one() {
    let node = Atom::from("moebi@localhost");
    let pid = Term::Pid(Pid::new("moebi@localhost", 14, 0, 0));
    let r = Term::Reference(Box::new(Reference::from((
        "moebi@localhost",
        vec![193413, 2290876417, 359632399],
    ))));
    assert_eq!(ex(&pid), "#PID<moebi@localhost.14.0>");
    assert_eq!(Elixir::local(&pid, &node).to_string(), "#PID<0.14.0>");
    assert_eq!(Erlang::local(&pid, &node).to_string(), "<0.14.0>");
    assert_eq!(
        Elixir::local(&r, &node).to_string(),
        "#Reference<0.359632399.2290876417.193413>"
    );
    assert_eq!(
        Erlang::local(&r, &node).to_string(),
        "#Ref<0.359632399.2290876417.193413>"
    );
    let other = Atom::from("alex@localhost");
    assert_eq!(
        Elixir::local(&pid, &other).to_string(),
        "#PID<moebi@localhost.14.0>"
    );
    let fun = Term::ExternalFun(Box::new(ExternalFun::from((
        "Elixir.Chat",
        "send_message",
        2,
    ))));
    assert_eq!(ex(&fun), "&Chat.send_message/2");
    assert_eq!(erl(&fun), "fun 'Elixir.Chat':send_message/2");
}

#[test]
fn term_macro_reads_like_elixir() {
    let count = 3;
    let name = "alex";
    let t =
        crate::term!({:reply, %{count: count, name: name}, [timeout: 5000, log: nil], (count * 2)});
    assert_eq!(
        ex(&t),
        r#"{:reply, %{count: 3, name: "alex"}, [timeout: 5000, log: nil], 6}"#
    );
    assert_eq!(
        ex(&crate::term!([:a, -1, 2.5, "x", true, :"two words"])),
        r#"[:a, -1, 2.5, "x", true, :"two words"]"#
    );
    assert_eq!(
        ex(&crate::term!(%{"b" => {:ok}, 1 => []})),
        r#"%{1 => [], "b" => {:ok}}"#
    );
    assert_eq!(ex(&crate::term!(%{})), "%{}");
    assert_eq!(ex(&crate::term!({})), "{}");
    assert_eq!(ex(&crate::term!([])), "[]");
    assert_eq!(crate::term!(:ok), atom("ok"));
}

#[test]
fn into_term_for_rust_values() {
    assert_eq!(ex(&(1u64 << 63).into_term()), "9223372036854775808");
    assert_eq!(ex(&Some("x").into_term()), r#""x""#);
    assert_eq!(ex(&None::<i32>.into_term()), "nil");
    assert_eq!(ex(&'a'.into_term()), "97");
    assert_eq!(ex(&vec![(1, false)].into_term()), "[{1, false}]");
    let m: HashMap<&str, i32> = [("k", 1)].into();
    assert_eq!(ex(&m.into_term()), r#"%{"k" => 1}"#);
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(rename_all = "snake_case")]
enum Shape {
    Point,
    Circle(f64),
    Rect(i64, i64),
    Named { name: String, sides: u8 },
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(rename = "Elixir.Chat.Message")]
struct Message {
    from: String,
    text: String,
    #[serde(with = "as_atom")]
    mood: String,
    #[serde(with = "as_charlist")]
    file: String,
    #[serde(with = "as_keyword")]
    opts: Opts,
    #[serde(with = "as_term")]
    pid: Pid,
    shapes: Vec<Shape>,
    reply_to: Option<String>,
    pair: (i32, bool),
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Opts {
    timeout: u32,
    retries: u8,
}

fn message() -> Message {
    Message {
        from: "alex".into(),
        text: "hi".into(),
        mood: "happy".into(),
        file: "a.txt".into(),
        opts: Opts {
            timeout: 5000,
            retries: 3,
        },
        pid: Pid::new("alex@localhost", 90, 0, 0),
        shapes: vec![
            Shape::Point,
            Shape::Circle(1.5),
            Shape::Rect(2, 3),
            Shape::Named {
                name: "tri".into(),
                sides: 3,
            },
        ],
        reply_to: None,
        pair: (7, true),
    }
}

#[test]
fn serde_shapes_are_elixir_shapes() {
    let t = to_term(&message()).unwrap();
    assert_eq!(
        ex(&t),
        concat!(
            r#"%Chat.Message{file: ~c"a.txt", from: "alex", mood: :happy, "#,
            r#"opts: [timeout: 5000, retries: 3], pair: {7, true}, pid: #PID<alex@localhost.90.0>, "#,
            r#"reply_to: nil, shapes: [:point, {:circle, 1.5}, {:rect, 2, 3}, "#,
            r#"{:named, %{name: "tri", sides: 3}}], text: "hi"}"#
        )
    );
    assert_eq!(from_term::<Message>(&t).unwrap(), message());
    assert_eq!(t.decode::<Message>().unwrap(), message());
}

#[test]
fn reading_is_as_lenient_as_elixir_code() {
    #[derive(Deserialize, Debug, PartialEq)]
    struct Opts2 {
        timeout: u32,
        name: String,
        tags: Vec<String>,
    }
    // A keyword list with an atom and a charlist for strings, string keys in a map.
    let kw = crate::term!([timeout: 10, name: :alex, tags: [(charlist("a")), "b"]]);
    let want = Opts2 {
        timeout: 10,
        name: "alex".into(),
        tags: vec!["a".into(), "b".into()],
    };
    assert_eq!(from_term::<Opts2>(&kw).unwrap(), want);
    let m = crate::term!(%{"timeout" => 10, "name" => "alex", "tags" => ["a", "b"]});
    assert_eq!(from_term::<Opts2>(&m).unwrap(), want);
    let pair: (i64, String) = from_term(&crate::term!({1, "x"})).unwrap();
    assert_eq!(pair, (1, "x".into()));
}

#[test]
fn wrong_shapes_say_what_was_expected() {
    let err = from_term::<Opts>(&crate::term!(%{timeout: "soon", retries: 1})).unwrap_err();
    assert!(err.to_string().contains("expected"), "{err}");
    let err = from_term::<Opts>(&crate::term!(:nope)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected a map or a keyword list, got an atom: :nope"
    );
    let err = from_term::<u8>(&int(300)).unwrap_err();
    assert!(err.to_string().contains("300"), "{err}");
    assert!(to_term(&f64::NAN).is_err());
    let err = from_term::<Shape>(&crate::term!({:circle, 1.5, 2})).unwrap_err();
    assert!(err.to_string().contains("circle"), "{err}");
}

#[test]
fn a_cut_display_looks_only_at_what_it_shows() {
    let mut long = vec![int('a' as i64); 100];
    long.push(atom("x"));
    assert_eq!(truncated(&list(long.clone()), 8), "~c\"aaaaa...");
    let whole = truncated(&list(long), 1000);
    assert!(
        whole.starts_with("[97, 97, ") && whole.ends_with(", :x]"),
        "{whole}"
    );
}

#[test]
fn results_are_ok_and_error_tuples() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Why {
        OutOfStock,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Unit;
    type Reserve = Result<i64, Why>;
    let shapes = |r: &Reserve| ex(&to_term(r).unwrap());
    assert_eq!(shapes(&Ok(10)), "{:ok, 10}");
    assert_eq!(shapes(&Err(Why::OutOfStock)), "{:error, :out_of_stock}");
    assert_eq!(ex(&to_term(&Ok::<(), String>(())).unwrap()), ":ok");
    assert_eq!(ex(&to_term(&Err::<i64, ()>(())).unwrap()), ":error");
    assert_eq!(ex(&to_term(&Ok::<Unit, ()>(Unit)).unwrap()), ":ok");
    assert_eq!(
        ex(&to_term(&Ok::<Option<i64>, ()>(None)).unwrap()),
        "{:ok, nil}"
    );
    assert_eq!(
        ex(&to_term(&Ok::<Vec<i64>, ()>(vec![])).unwrap()),
        "{:ok, []}"
    );

    let read = |text: &str| from_term::<Reserve>(&parse(text).unwrap());
    assert_eq!(read("{:ok, 10}"), Ok(Ok(10)));
    assert_eq!(read("{:error, :out_of_stock}"), Ok(Err(Why::OutOfStock)));
    assert_eq!(from_term::<Result<(), String>>(&atom("ok")), Ok(Ok(())));
    assert_eq!(
        from_term::<Result<i64, Option<String>>>(&atom("error")),
        Ok(Err(None))
    );
    assert_eq!(
        read("{:Ok, 10}").unwrap_err().to_string(),
        "expected {:ok, value} or {:error, reason}, got a tuple: {:Ok, 10}"
    );
    assert!(read(":ok").is_err());
    assert!(read("{:ok, 1, 2}").is_err());
}

#[test]
fn results_into_terms_as_serde_writes_them() {
    assert_eq!(ex(&Ok::<i64, String>(10).into_term()), "{:ok, 10}");
    assert_eq!(
        ex(&Err::<i64, _>(atom("out_of_stock")).into_term()),
        "{:error, :out_of_stock}"
    );
    let sku = String::from("sku-1");
    assert_eq!(ex(&crate::term!({:price, (&sku)})), r#"{:price, "sku-1"}"#);
    assert_eq!(sku, "sku-1");
}

#[test]
fn pids_references_atoms_and_terms_in_rust_types() {
    let pid = Pid::new("alex@localhost", 107, 0, 3);
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Why {
        NoSuchRoom,
    }
    let reply: Result<Vec<Pid>, Why> = Ok(vec![pid]);
    let t = to_term(&reply).unwrap();
    assert_eq!(t, tuple(vec![atom("ok"), list(vec![Term::Pid(pid)])]));
    assert_eq!(from_term::<Result<Vec<Pid>, Why>>(&t), Ok(reply));
    assert!(from_term::<Pid>(&atom("x")).is_err());

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Event {
        kind: Atom,
        data: Term,
    }
    let event = Event {
        kind: Atom::from("joined"),
        data: tuple(vec![atom("room"), binary("lobby")]),
    };
    let t = to_term(&event).unwrap();
    assert_eq!(ex(&t), r#"%{data: {:room, "lobby"}, kind: :joined}"#);
    assert_eq!(from_term::<Event>(&t), Ok(event));
    assert_eq!(
        from_term::<Atom>(&binary("joined")),
        Ok(Atom::from("joined"))
    );
    assert!(from_term::<Atom>(&binary("a".repeat(256))).is_err());
}

#[test]
fn a_nodes_own_pids_read_back() {
    let local = |id, serial| Term::Pid(Pid::new(LOCAL_NODE, id, serial, 0));
    assert_eq!(parse("#PID<0.107.0>"), Ok(local(107, 0)));
    assert_eq!(
        parse("{:x, #PID<0.1.2>} # a comment"),
        Ok(tuple(vec![atom("x"), local(1, 2)]))
    );
    assert_eq!(
        parse_erlang("[<0.107.0>, <<1>>]"),
        Ok(list(vec![local(107, 0), binary(vec![1u8])]))
    );
    assert_eq!(
        parse("#PID<12345.107.0>").unwrap_err().to_string(),
        "1:1: #PID<12345.107.0> is a pid of another node, which its number does not name: only a node's own pids, #PID<0.107.0>, can be read"
    );
    assert!(parse("#PID<0.1>").is_err());
    // Another node's, as this crate prints it: on that node, creation 0.
    let bob = Term::Pid(Pid::new("bob@127.0.0.1", 85, 0, 0));
    assert_eq!(parse("#PID<bob@127.0.0.1.85.0>"), Ok(bob.clone()));
    assert_eq!(parse_erlang("<bob@127.0.0.1.85.0>"), Ok(bob.clone()));
    let printed = Term::Pid(Pid::new("bob@127.0.0.1", 85, 0, 3));
    assert_eq!(parse(&ex(&printed)), Ok(bob));
    assert!(parse("#PID<bob.85.0>").is_err());
    assert!(parse("#PID<bob@x.85>").is_err());
}

#[test]
fn binaries_from_owned_and_lent_bytes() {
    let text = String::from("woof");
    let bytes = vec![1u8, 2];
    let from = [
        binary(&text),
        binary(text.as_str()),
        binary(text.clone()),
        binary(std::borrow::Cow::Borrowed("woof")),
    ];
    assert!(from.iter().all(|b| *b == binary(b"woof")));
    assert_eq!(binary(&bytes), binary([1u8, 2]));
    assert_eq!(binary(bytes.as_slice()), binary(bytes));
}

#[test]
fn plain_values_convert_with_from() {
    use crate::term::Inspect;
    let terms: [Term; 5] = [
        Term::from(42),
        Term::from(u64::MAX),
        2.5.into(),
        true.into(),
        "hi".into(),
    ];
    let shown: Vec<String> = terms.iter().map(|t| t.inspect().to_string()).collect();
    assert_eq!(
        shown,
        ["42", "18446744073709551615", "2.5", "true", "\"hi\""]
    );
}

/// What does not fit is refused, not cut to fit: a tuple with more elements than the
/// Rust tuple (`{a, b} = {1, 2, 3}` is no match in Elixir), a tuple variant likewise,
/// `nil`, `true` or `false` for a string, a value where `()` says there is none.
#[test]
fn what_does_not_fit_is_refused_not_cut() {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Cmd {
        Move(i64, i64),
        Ping,
    }
    let three = crate::term!({1, 2, 3});
    let e = three.decode::<(i64, i64)>().unwrap_err().to_string();
    assert_eq!(e, "expected 2 elements, got a tuple: {1, 2, 3}");
    assert!(crate::term!([1, 2, 3]).decode::<(i64, i64)>().is_err());
    assert_eq!(crate::term!({1, 2}).decode::<(i64, i64)>().unwrap(), (1, 2));
    let e = crate::term!({:move, 1, 2, 3})
        .decode::<Cmd>()
        .unwrap_err()
        .to_string();
    assert!(e.contains("with 2 elements after the tag, got 3"), "{e}");
    let e = crate::term!({:ping, 1})
        .decode::<Cmd>()
        .unwrap_err()
        .to_string();
    assert_eq!(e, "expected :ping alone, got it with 1 more elements");
    assert!(matches!(
        crate::term!({:move, 1, 2}).decode::<Cmd>(),
        Ok(Cmd::Move(1, 2))
    ));
    for not_text in [crate::term!(nil), crate::term!(true), crate::term!(false)] {
        assert!(not_text.decode::<String>().is_err(), "{not_text}");
    }
    assert_eq!(crate::term!(:hello).decode::<String>().unwrap(), "hello");
    assert_eq!(crate::term!(nil).decode::<Option<String>>().unwrap(), None);
    assert!(crate::term!({:ok, 5})
        .decode::<Result<(), String>>()
        .is_err());
    assert_eq!(
        crate::term!(:ok).decode::<Result<(), String>>().unwrap(),
        Ok(())
    );
    assert_eq!(
        crate::term!({:ok, nil})
            .decode::<Result<(), String>>()
            .unwrap(),
        Ok(())
    );
    assert!(crate::term!(5).decode::<()>().is_err());
}

/// A binary that need not be UTF-8, both ways: `serde_bytes::ByteBuf`.
#[test]
fn bytes_are_a_binary_through_serde_bytes() {
    let raw = Term::Binary(Binary::from(vec![255u8, 0, 104]));
    let bytes: serde_bytes::ByteBuf = raw.decode().unwrap();
    assert_eq!(bytes.as_slice(), &[255, 0, 104]);
    assert_eq!(to_term(&bytes).unwrap(), raw);
    assert!(raw.decode::<String>().is_err());
}

/// As iex 1.14 and 1.20 print them: `::`, `^^^` and `~~~` quoted, `...` bare, and a
/// list with DEL (127) as a list, not a charlist.
#[test]
fn operator_atoms_and_del_as_iex_prints_them() {
    let printed: Vec<String> = ["::", "^^^", "~~~", "...", "..//"]
        .iter()
        .map(|a| ex(&atom(a)))
        .collect();
    assert_eq!(
        printed,
        [":\"::\"", ":\"^^^\"", ":\"~~~\"", ":...", ":..//"]
    );
    assert_eq!(ex(&crate::term!([127])), "[127]");
    assert_eq!(ex(&crate::term!([97, 127, 98])), "[97, 127, 98]");
}

/// Integers of 128 bits both ways, and a big integer into a float, as a term holds
/// integers of any size.
#[test]
fn integers_of_128_bits_through_serde() {
    for v in [i128::MAX, i128::MIN, -(1i128 << 100)] {
        let t = to_term(&v).unwrap();
        assert_eq!(t.decode::<i128>().unwrap(), v);
        assert_eq!(ex(&t), v.to_string());
    }
    let t = to_term(&u128::MAX).unwrap();
    assert_eq!(t.decode::<u128>().unwrap(), u128::MAX);
    assert_eq!(
        to_term(&(1u128 << 64)).unwrap().decode::<f64>().unwrap(),
        2f64.powi(64)
    );
    assert!(t.decode::<i64>().is_err());
}
