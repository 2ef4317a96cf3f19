//! Terms against a real Elixir node: every Rust shape serde makes is the term Elixir
//! writes for the same data (compared on both sides: what Elixir sends decodes into the
//! Rust value, and what we send is `==` to the Elixir literal there), and terms print as
//! `inspect/1` and `io_lib:format("~p")` print them on that node.

mod support;

use cnode::term::{
    as_atom, as_charlist, as_keyword, binary, from_term, to_term, Atom, Elixir, Erlang, Match, Term,
};
use cnode::{Node, NodeConfig};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Debug;
use std::time::Duration;
use support::{unique_name, BeamNode, Epmd};

const COOKIE: &str = "secret_token";
const WAIT: Duration = Duration::from_secs(20);

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Request {
    Ping,
    Get(String),
    Move(i64, i64),
    Put { key: String, value: f64 },
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct User {
    name: String,
    age: u32,
    admin: bool,
    nickname: Option<String>,
    tags: Vec<String>,
    scores: (i64, f64),
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename = "Elixir.URI")]
struct Uri {
    scheme: String,
    host: String,
    port: u16,
    path: Option<String>,
    query: Option<String>,
    fragment: Option<String>,
    userinfo: Option<String>,
    authority: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Options {
    #[serde(with = "as_atom")]
    mode: String,
    #[serde(with = "as_charlist")]
    file: String,
    #[serde(with = "as_keyword")]
    retry: Retry,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Retry {
    times: u8,
    backoff: u32,
}

struct Peer {
    node: Node,
    alex: String,
}

impl Peer {
    /// `expr` evaluated on alex: its value as it arrives here.
    async fn eval(&self, expr: &str) -> Term {
        self.eval_binding(expr, cnode::term!([])).await
    }

    /// `Code.eval_string(code, x: term)` on alex.
    async fn eval_with(&self, code: &str, x: Term) -> Term {
        self.eval_binding(code, cnode::term!([x: x])).await
    }

    async fn eval_binding(&self, code: &str, binding: Term) -> Term {
        let result = self
            .node
            .erpc_call(
                &self.alex,
                "Elixir.Code",
                "eval_string",
                vec![binary(code), binding],
                WAIT,
            )
            .await
            .unwrap_or_else(|e| panic!("{code}: {e}"));
        result.as_tuple_n(2).expect("{value, binding}")[0].clone()
    }

    /// `value` and the Elixir `literal` are the same term, seen from both sides.
    async fn same<T>(&self, value: T, literal: &str)
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        let ours = to_term(&value).expect("serializes");
        let theirs = self.eval(literal).await;
        assert_eq!(
            from_term::<T>(&theirs).as_ref(),
            Ok(&value),
            "{literal} as Rust"
        );
        assert_eq!(
            theirs,
            ours,
            "{literal}: Elixir made {}, we made {}",
            Elixir(&theirs),
            Elixir(&ours)
        );
        // Byte for byte as `:erlang.term_to_binary/2` writes it (`:deterministic`: the
        // keys of maps in term order, as OTP 25 writes small maps anyway; minor version
        // 2, atoms in UTF-8, as distribution and OTP 26's default have them).
        let bytes = self
            .eval(&format!(
                ":erlang.term_to_binary({literal}, [:deterministic, minor_version: 2])"
            ))
            .await;
        assert_eq!(
            Some(&ours.to_binary().expect("encodes")[..]),
            bytes.as_binary(),
            "{literal}: our bytes are not term_to_binary's"
        );
        let equal = self.eval_with(&format!("x == {literal}"), ours).await;
        assert!(
            equal.is_atom("true"),
            "{literal}: not == on the Elixir side"
        );
    }
}

async fn start() -> (Epmd, BeamNode, Peer) {
    let epmd = Epmd::start();
    let alex = tokio::task::block_in_place(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let mut config = NodeConfig::new(&format!("{}@localhost", unique_name("terms")), COOKIE);
    config.epmd_port = epmd.port();
    let node = Node::start(config).await.expect("the node starts");
    let peer = Peer {
        node,
        alex: alex.node_name(),
    };
    (epmd, alex, peer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_types_are_the_terms_elixir_writes() {
    let (_epmd, _alex, peer) = start().await;

    peer.same(42i64, "42").await;
    peer.same(-7i32, "-7").await;
    peer.same(1u64 << 40, "1099511627776").await;
    peer.same(u64::MAX, "18446744073709551615").await;
    peer.same(2.5f64, "2.5").await;
    peer.same(true, "true").await;
    peer.same("héllo".to_string(), r#""héllo""#).await;
    peer.same(None::<i64>, "nil").await;
    peer.same(Some(3i64), "3").await;
    peer.same(vec![1i64, 2, 3], "[1, 2, 3]").await;
    peer.same(Vec::<String>::new(), "[]").await;
    peer.same((1i64, "a".to_string(), false), r#"{1, "a", false}"#)
        .await;
    let map: HashMap<String, i64> = [("a".into(), 1), ("b".into(), 2)].into();
    peer.same(map, r#"%{"a" => 1, "b" => 2}"#).await;

    peer.same(Request::Ping, ":ping").await;
    peer.same(Request::Get("k".into()), r#"{:get, "k"}"#).await;
    peer.same(Request::Move(1, -2), "{:move, 1, -2}").await;
    peer.same(
        Request::Put {
            key: "k".into(),
            value: 0.5,
        },
        r#"{:put, %{key: "k", value: 0.5}}"#,
    )
    .await;
    peer.same(
        User {
            name: "alex".into(),
            age: 30,
            admin: false,
            nickname: None,
            tags: vec!["a".into(), "b".into()],
            scores: (3, 4.5),
        },
        r#"%{name: "alex", age: 30, admin: false, nickname: nil, tags: ["a", "b"], scores: {3, 4.5}}"#,
    )
    .await;
    // An Elixir struct, by its module's name.
    peer.same(
        Uri {
            scheme: "https".into(),
            host: "example.com".into(),
            port: 443,
            path: Some("/x".into()),
            query: None,
            fragment: None,
            userinfo: None,
            authority: Some("example.com".into()),
        },
        r#"URI.parse("https://example.com/x")"#,
    )
    .await;
    peer.same(
        Options {
            mode: "fast".into(),
            file: "a.txt".into(),
            retry: Retry {
                times: 3,
                backoff: 100,
            },
        },
        r#"%{mode: :fast, file: ~c"a.txt", retry: [times: 3, backoff: 100]}"#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terms_print_as_the_beam_prints_them() {
    let (_epmd, _alex, peer) = start().await;
    let alex = Atom::from(peer.alex.as_str());
    let elixir_version = peer.eval("System.version()").await;
    let elixir_version = String::from_utf8_lossy(elixir_version.as_binary().unwrap()).into_owned();
    // Charlists print as ~c"abc" from Elixir 1.15 on, as 'abc' before.
    let sigil_charlists = !elixir_version.starts_with("1.14");
    let otp_release = peer
        .eval("List.to_string(:erlang.system_info(:otp_release))")
        .await;
    let otp_release = String::from_utf8_lossy(otp_release.as_binary().unwrap()).into_owned();

    let mut cases = vec![
        "42",
        "-12345678901234567890123",
        "1.5",
        "1.0e20",
        "1.0e-5",
        "1.0e15",
        "0.1",
        ":ok",
        ":\"hello world\"",
        "Chat.Message",
        ":\"Elixir.chat\"",
        "nil",
        ":foo?",
        ":ok@host",
        ":+",
        "\"h\\\"é\\n\"",
        "<<255, 0>>",
        "<<1, 2::size(3)>>",
        "\"\"",
        "\"\\#{x}\"",
        "[]",
        "{}",
        "[1 | 2]",
        "[a: 1, b: \"x\"]",
        "[{:a, 1}, {\"b\", 2}]",
        "%{a: [1, 2]}",
        "%{\"k\" => {:v}}",
        "%{1 => 2}",
        "%{Enum => 1}",
        "[{Enum, 1}]",
        "{:echoed, \"hello\", [1, [2]], %{}}",
        "self()",
        "make_ref()",
        "{self(), make_ref()}",
        "&Enum.sum/1",
        "&:erlang.node/0",
        "%RuntimeError{message: \"boom\"}",
        "URI.parse(\"http://x\").port",
        "1..3",
        "1..9//2",
        "3..1//-1",
        "3..1//1",
        "-3..-1",
        "MapSet.new([:b, 2, \"a\"])",
        "MapSet.new([])",
        "~D[2026-12-04]",
        "Date.new!(-12, 1, 2)",
        "~T[09:05:00]",
        "~T[12:00:00.123]",
        "~T[12:00:00.000001]",
        "~N[2026-12-04 12:00:00.5]",
        "~U[2026-12-04 12:00:00Z]",
        "%DateTime{year: 2026, month: 1, day: 1, hour: 0, minute: 0, second: 0,
          microsecond: {0, 0}, time_zone: \"Europe/Paris\", zone_abbr: \"CET\",
          utc_offset: 3600, std_offset: 0, calendar: Calendar.ISO}",
        "%DateTime{year: 2026, month: 7, day: 1, hour: 0, minute: 0, second: 0,
          microsecond: {0, 3}, time_zone: \"America/New_York\", zone_abbr: \"EDT\",
          utc_offset: -18000, std_offset: 3600, calendar: Calendar.ISO}",
    ];
    if sigil_charlists {
        cases.extend(["~c\"abc\"", "~c\"a\\nb\""]);
    }
    for case in cases {
        let t = peer
            .eval(&format!(
                "t = {case}
                 {{t, inspect(t, limit: :infinity, printable_limit: :infinity),
                  IO.chardata_to_string(:io_lib.format(~c\"~p\", [t]))}}"
            ))
            .await;
        let e = t.as_tuple_n(3).expect("{t, inspect, ~p}");
        let inspected = String::from_utf8_lossy(e[1].as_binary().unwrap()).into_owned();
        // ~p breaks a long term over lines, indented: as one line, it is ours.
        let erlang: String = String::from_utf8_lossy(e[2].as_binary().unwrap())
            .lines()
            .map(str::trim_start)
            .collect();
        assert_eq!(Elixir::local(&e[0], &alex).to_string(), inspected, "{case}");
        // From OTP 26 on, ~p prints a small map's keys in the order of the atom table,
        // which a term alone does not tell: such maps are compared in Elixir's syntax.
        let many_keys = matches!(&e[0], Term::Map(m) if m.map.len() > 1);
        if !many_keys || otp_release == "25" {
            assert_eq!(Erlang::local(&e[0], &alex).to_string(), erlang, "{case}");
        }
    }
}
