//! The `cnode` command against a real Elixir node: every subcommand, every exit status,
//! and malformed arguments.

mod support;

use std::process::{Command, Output};
use std::time::Duration;
use support::{free_port, unique_name, BeamNode, Epmd, RustNode};

const COOKIE: &str = "secret_token";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn cnode(epmd: &Epmd, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_cnode"))
        .args(["--timeout", "20"])
        .args(args)
        .env("ERL_EPMD_PORT", epmd.port().to_string())
        .env_remove("RUST_LOG")
        .output()
        .expect("cnode runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// The `cnode` command with `args`, on the test's EPMD.
fn command(epmd: &Epmd, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cnode"));
    command
        .args(args)
        .env("ERL_EPMD_PORT", epmd.port().to_string())
        .env_remove("RUST_LOG")
        .env_remove("RELEASE_COOKIE");
    command
}

fn ok(epmd: &Epmd, args: &[&str]) -> String {
    let run = cnode(epmd, args);
    assert_eq!(
        run.code, 0,
        "{args:?}\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    run.stdout.trim_end().to_owned()
}

fn fails(epmd: &Epmd, args: &[&str], code: i32) -> String {
    let run = cnode(epmd, args);
    assert_eq!(
        run.code, code,
        "{args:?}\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    run.stderr
}

#[test]
fn every_subcommand_against_iex() {
    let epmd = Epmd::start();
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let a = alex.node_name();
    let a = a.as_str();
    let c = ["--cookie", COOKIE];
    let with =
        |rest: &[&str]| -> Vec<String> { c.iter().chain(rest).map(|s| s.to_string()).collect() };
    let run = |rest: &[&str]| {
        ok(
            &epmd,
            &with(rest).iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };

    assert_eq!(run(&["ping", a]), "pong");
    assert_eq!(run(&["call", a, "Enum.sum", "[1, 2, 3]"]), "6");
    assert_eq!(
        run(&["call", a, "Enum.reverse", "[:a, \"b\", {1, 2.5}]"]),
        r#"[{1, 2.5}, "b", :a]"#
    );
    assert_eq!(run(&["call", a, ":erlang.node"]), format!(":{a}"));
    // Negative numbers are arguments, not options; integers of any size and base.
    assert_eq!(run(&["call", a, "Kernel.abs", "-5"]), "5");
    assert_eq!(run(&["call", a, "Kernel.max", "-2.5", "-1.5e1"]), "-2.5");
    assert_eq!(run(&["call", a, "Kernel.abs", "--", "-0x10"]), "16");
    assert_eq!(
        run(&["call", a, "Kernel.abs", "-123456789012345678901234567890"]),
        "123456789012345678901234567890"
    );
    assert_eq!(
        run(&["call", a, "Enum.sum", "[?a, 0b10, 0o10, 1_000]"]),
        "1107"
    );
    assert_eq!(
        run(&[
            "call",
            a,
            "Kernel.inspect",
            r#"<<1::size(3), -1::16, "é"::utf16-little>>"#
        ]),
        r#""<<63, 255, 253, 32, 0::size(3)>>""#
    );
    assert_eq!(run(&["call", a, "Enum.sum", "1..10//3"]), "22");
    assert_eq!(
        run(&["call", a, "Date.add", "~D[2026-12-31]", "1"]),
        "~D[2027-01-01]"
    );
    assert_eq!(
        run(&["call", a, "Enum.join", "~w(a b c)", "~s(-)"]),
        r#""a-b-c""#
    );
    // An external fun, given to the node's function and printed back.
    assert_eq!(
        run(&["call", a, "Enum.map", "[1, 2]", "&Integer.to_string/1"]),
        r#"["1", "2"]"#
    );
    assert_eq!(
        run(&[
            "--erlang",
            "call",
            a,
            "lists:map",
            "fun erlang:abs/1",
            "[-1]"
        ]),
        "[1]"
    );
    assert_eq!(
        run(&["call", a, "Function.identity", "&:lists.sum/1"]),
        "&:lists.sum/1"
    );
    assert_eq!(
        run(&[
            "--erlang",
            "call",
            a,
            "erlang:abs",
            "--",
            "-16#1ffffffffffffffff"
        ]),
        "36893488147419103231"
    );
    assert_eq!(
        run(&["call", a, "Map.new", "[a: 1, b: ~c\"x\"]"]),
        r#"%{a: 1, b: ~c"x"}"#
    );
    assert_eq!(
        run(&["--erlang", "call", a, "lists:seq", "1", "3"]),
        "[1,2,3]"
    );
    assert_eq!(
        run(&["--erlang", "call", a, "'Elixir.Enum':sum", "[1,2]"]),
        "3"
    );
    assert_eq!(
        run(&[
            "--json",
            "call",
            a,
            "Map.new",
            "[a: 1, b: \"x\", c: nil, d: [1, 2.5]]"
        ]),
        r#"{"a":1,"b":"x","c":null,"d":[1,2.5]}"#
    );
    // `:undefined` a string, as Jason writes it (only `nil` is `null`); `ping` a string;
    // `-` is the argument on stdin; `Elixir.Enum` is `Enum`.
    assert_eq!(
        run(&["--json", "call", a, ":erlang.whereis", ":nope"]),
        r#""undefined""#
    );
    assert_eq!(run(&["--json", "ping", a]), r#""pong""#);
    let mut piped = command(
        &epmd,
        &["--cookie", COOKIE, "call", a, "Elixir.Enum.sum", "-"],
    )
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("cnode runs");
    {
        use std::io::Write as _;
        let mut stdin = piped.stdin.take().unwrap();
        stdin.write_all(b"[1, 2,\n 3]\n").unwrap();
    }
    let summed = piped.wait_with_output().expect("cnode ends");
    assert_eq!(String::from_utf8_lossy(&summed.stdout).trim(), "6");
    // A struct literal is made as Elixir makes it: the other fields take their defaults;
    // one it does not have raises, as it does not compile in Elixir.
    assert_eq!(
        run(&[
            "call",
            a,
            "URI.to_string",
            "%URI{scheme: \"http\", host: \"x\", path: \"/a\"}"
        ]),
        r#""http://x/a""#
    );
    // A result with a struct, as iex on the node shows it: its fields in order, those
    // its Inspect hides left out (URI's authority).
    assert_eq!(
        run(&[
            "call",
            a,
            "Function.identity",
            "%URI{scheme: \"https\", host: \"x.org\", port: 443}"
        ]),
        r#"%URI{scheme: "https", userinfo: nil, host: "x.org", port: 443, path: nil, query: nil, fragment: nil}"#
    );
    let nested = run(&["call", a, "Kernel.elem", "{1, %URI{host: \"x\"}}", "1"]);
    assert!(
        nested.starts_with("%URI{") && nested.contains("port: nil"),
        "{nested}"
    );
    let e = fails(
        &epmd,
        &with(&["call", a, "Map.keys", "%URI{nope: 1}"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        1,
    );
    assert!(e.contains("KeyError"), "{e}");
    // Number keys as Jason writes them (by to_string); other keys, pairs.
    assert_eq!(
        run(&["--json", "call", a, "Map.new", "[{1, 2}, {2.5, :x}]"]),
        r#"{"1":2,"2.5":"x"}"#
    );
    assert_eq!(
        run(&["--json", "call", a, "Map.new", "[{{1, 2}, 3}]"]),
        "[[[1,2],3]]"
    );
    // Floats and charlists as Jason writes them.
    assert_eq!(
        run(&[
            "--json",
            "eval",
            a,
            "{1.0, -0.0, 1.0e20, 0.1, [104, 105], ~c\"abc\"}"
        ]),
        "[1.0,-0.0,1.0e20,0.1,[104,105],[97,98,99]]"
    );
    // Dates and times as Jason writes them (ISO 8601), a MapSet as an array.
    assert_eq!(
        run(&[
            "--json",
            "eval",
            a,
            "{~D[2026-12-04], ~T[12:00:00.5], ~N[2026-12-04 12:00:00], \
             ~U[2026-12-04 12:00:00Z], MapSet.new([10, 2, :a])}"
        ]),
        r#"["2026-12-04","12:00:00.5","2026-12-04T12:00:00","2026-12-04T12:00:00Z",[2,10,"a"]]"#
    );
    assert_eq!(run(&["eval", a, "Enum.map([1, 2], &(&1 * 2))"]), "[2, 4]");
    // eval shows a struct as call does, inspected by the node (its fields in the
    // struct's order, where the command would sort them), and a fun named as there;
    // the result is on a line of its own after what the code wrote.
    alex.eval(
        "defmodule Script.Secret do
           defstruct user: \"u\", pw: \"hunter2\"
           def make, do: %__MODULE__{}
           def fun, do: fn x -> x end
         end
         :ok",
    );
    assert_eq!(
        run(&["eval", a, "Script.Secret.make()"]),
        r#"%Script.Secret{user: "u", pw: "hunter2"}"#
    );
    assert!(
        run(&["call", a, "Script.Secret.fun"]).ends_with(" in Script.Secret.fun/0>"),
        "a fun as the node names it"
    );
    // With --json, stdout holds the result alone (for jq): what the function prints
    // goes to stderr.
    let printed = cnode(
        &epmd,
        &with(&["--json", "eval", a, "IO.puts(\"progress...\"); %{ok: true}"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        (
            printed.code,
            printed.stdout.as_str(),
            printed.stderr.as_str()
        ),
        (0, "{\"ok\":true}\n", "progress...\n")
    );
    // `\xHH` is a byte of a string, as Elixir reads it.
    assert_eq!(
        run(&["call", a, "Kernel.byte_size", r#""\xc3\xa9""#]),
        run(&["eval", a, r#"byte_size("\xc3\xa9")"#])
    );
    assert_eq!(
        run(&["call", a, "Kernel.==", r#""\xff""#, "<<255>>"]),
        "true"
    );
    // A negative number with a signed exponent is an argument too.
    assert_eq!(run(&["call", a, "Kernel.abs", "-2.5e-3"]), "0.0025");
    assert_eq!(run(&["--erlang", "eval", a, "lists:sum([1,2,3])"]), "6");
    // The node's own pids print as its shell prints them.
    let init = alex.eval(":erlang.whereis(:init) |> inspect()");
    assert_eq!(
        run(&["call", a, ":erlang.whereis", ":init"]),
        init.trim_matches('"')
    );
    assert_eq!(
        run(&["--erlang", "call", a, "erlang:whereis", "init"]),
        "<0.0.0>"
    );
    // And read back as the node's own.
    let init = run(&["call", a, ":erlang.whereis", ":init"]);
    assert_eq!(
        run(&["call", a, ":erlang.process_info", &init, ":registered_name"]),
        "{:registered_name, :init}"
    );
    assert_eq!(
        run(&["--erlang", "call", a, "erlang:is_process_alive", "<0.0.0>"]),
        "true"
    );
    // Output of the call goes to the caller's group leader, as from iex: here, the
    // command's stdout, before the result.
    assert_eq!(
        run(&["call", a, "Chat.receive_message", "\"hi from a script\""]),
        "hi from a script\n:ok"
    );
    assert!(
        !alex.output().contains("hi from a script"),
        "{}",
        alex.output()
    );

    // send/2 to a registered name: delivered before the command exits.
    alex.eval(
        "parent = self()
         spawn(fn -> Process.register(self(), :inbox); receive do m -> send(parent, {:got, m}) end end)
         :ok",
    );
    assert!(alex.eval("Process.sleep(50); Process.whereis(:inbox) != nil") == "true");
    assert_eq!(
        run(&["send", a, "inbox", "{:hello, \"from a script\"}"]),
        ""
    );
    assert_eq!(
        alex.eval("receive do {:got, m} -> m after 20_000 -> :nothing end"),
        r#"{:hello, "from a script"}"#
    );
    // A name is read as Elixir reads it: `:inbox` an atom, `Script.Inbox` a module's
    // name (the command's own node keeps its own name).
    alex.eval(
        "parent = self()
         for name <- [:inbox, Script.Inbox] do
           spawn(fn -> Process.register(self(), name); receive do m -> send(parent, {:got, name, m}) end end)
         end
         :ok",
    );
    assert!(
        alex.eval("Process.sleep(50); Process.whereis(:inbox) != nil and Process.whereis(Script.Inbox) != nil")
            == "true"
    );
    // What is no atom is no registered name: refused, not sent to nobody.
    for name in ["\"inbox\"", "1", "{:a, :b}", "in box"] {
        let e = fails(
            &epmd,
            &with(&["send", a, name, ":x"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            2,
        );
        assert!(e.contains("is not a registered name"), "{name}: {e}");
    }
    assert_eq!(run(&["send", a, ":inbox", ":one"]), "");
    assert_eq!(run(&["send", a, "Script.Inbox", ":two"]), "");
    assert_eq!(
        alex.eval(
            "for _ <- 1..2 do receive do {:got, name, m} -> {name, m} after 20_000 -> :nothing end end |> Enum.sort()"
        ),
        "[{Script.Inbox, :two}, {:inbox, :one}]"
    );
    // To a pid as a step printed it.
    alex.eval("Process.register(self(), :script_shell)");
    let inbox = run(&[
        "eval",
        a,
        "parent = Process.whereis(:script_shell)
         spawn(fn -> receive do m -> send(parent, {:by_pid, m}) end end)",
    ]);
    assert_eq!(run(&["send", a, &inbox, ":three"]), "");
    assert_eq!(
        alex.eval("receive do {:by_pid, m} -> m after 20_000 -> :nothing end"),
        ":three"
    );

    // The command's own node is hidden, and gone when the command is.
    assert_eq!(alex.eval("Node.list()"), "[]");

    let names = ok(&epmd, &["names"]);
    let short = a.split('@').next().unwrap();
    assert!(
        names
            .lines()
            .any(|l| l.starts_with(&format!("name {short} at port "))),
        "{names}"
    );
    let json = ok(&epmd, &["--json", "names"]);
    assert!(
        json.starts_with('[') && json.contains(&format!("{{\"name\":\"{short}\",\"port\":")),
        "{json}"
    );
}

#[test]
fn exit_statuses_a_script_can_use() {
    let epmd = Epmd::start();
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let a = alex.node_name();
    let a = a.as_str();

    // RUST_LOG: what the node did, on stderr (here the refused cookie); nothing
    // without it.
    let refused = |log: Option<&str>| {
        let mut c = command(&epmd, &["--cookie", "wrong", "--timeout", "20", "ping", a]);
        if let Some(filter) = log {
            c.env("RUST_LOG", filter);
        }
        let out = c.output().expect("cnode runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (quiet, logged) = (refused(None), refused(Some("info")));
    assert_eq!((quiet.0, logged.0), (Some(4), Some(4)));
    assert!(!quiet.1.contains("INFO"), "{}", quiet.1);
    assert!(logged.1.contains("node started"), "{}", logged.1);

    // A result that cannot be written (a full disk) is a failure, not a success
    // that lost it.
    let full = command(&epmd, &["--cookie", COOKIE, "call", a, "Kernel.abs", "1"])
        .stdout(
            std::fs::File::options()
                .write(true)
                .open("/dev/full")
                .expect("/dev/full"),
        )
        .output()
        .expect("cnode runs");
    assert_eq!(
        (
            full.status.code(),
            String::from_utf8_lossy(&full.stderr).trim_end()
        ),
        (
            Some(2),
            "cnode: cannot write the result: No space left on device (os error 28)"
        )
    );

    // 1: an exception, printed as iex prints it; {:badrpc, _} as well.
    let e = fails(&epmd, &["--cookie", COOKIE, "eval", a, "raise \"boom\""], 1);
    assert!(e.contains("** (RuntimeError) boom"), "{e}");
    let e = fails(
        &epmd,
        &["--cookie", COOKIE, "call", a, "String.to_integer", "\"x\""],
        1,
    );
    assert!(e.contains("** (ArgumentError)"), "{e}");
    // Worded by the node, as its iex words it: the module is the node's to know.
    let e = fails(&epmd, &["--cookie", COOKIE, "call", a, "Nope.f", "1"], 1);
    assert!(
        e.contains("** (UndefinedFunctionError) function Nope.f/1 is undefined (module Nope is not available)"),
        "{e}"
    );
    let e = fails(&epmd, &["--cookie", COOKIE, "call", a, "Enum.nope", "1"], 1);
    assert!(
        e.contains("** (UndefinedFunctionError) function Enum.nope/1 is undefined or private"),
        "{e}"
    );
    // An exit as iex prints it: `Exception.format_exit/1`'s words.
    let e = fails(
        &epmd,
        &["--cookie", COOKIE, "eval", a, "exit({:shutdown, :closed})"],
        1,
    );
    assert!(e.contains("** (exit) shutdown: :closed"), "{e}");
    let e = fails(
        &epmd,
        &["--cookie", COOKIE, "--erlang", "eval", a, "throw(x)"],
        1,
    );
    assert!(e.contains("** exception throw: x"), "{e}");
    // Errors the Erlang shell explains, explained; Elixir's compiler errors with their
    // messages; with --json, the message beside the reason.
    let e = fails(
        &epmd,
        &["--cookie", COOKIE, "--erlang", "call", a, "nope:f", "1"],
        1,
    );
    assert!(
        e.contains("** exception error: undefined function nope:f/1"),
        "{e}"
    );
    let e = fails(&epmd, &["--cookie", COOKIE, "eval", a, "x ="], 1);
    assert!(
        e.contains("** (TokenMissingError) nofile:1:3: syntax error: expression is incomplete"),
        "{e}"
    );
    let e = fails(
        &epmd,
        &["--cookie", COOKIE, "eval", a, "Map.fetch!(%{}, :a)"],
        1,
    );
    assert!(e.contains("** (KeyError) key :a not found"), "{e}");
    let e = fails(
        &epmd,
        &["--cookie", COOKIE, "--json", "call", a, "Nope.f", "1"],
        1,
    );
    assert!(
        e.contains(r#""class":"error","reason":"undef","message":"** (UndefinedFunctionError) function Nope.f/1 is undefined (module Nope is not available)"#),
        "{e}"
    );

    // 2: usage, and terms that do not parse, with where.
    let e = fails(
        &epmd,
        &["--cookie", COOKIE, "call", a, "Enum.sum", "[1, 2"],
        2,
    );
    assert!(
        e.contains("argument 1 is not a term: 1:6: expected , or ] in a list, found the end"),
        "{e}"
    );
    assert!(e.contains("  [1, 2\n       ^"), "{e}");
    // A pid its node's release cannot make is refused before it is sent (on the wire,
    // an OTP 25 node takes it for a corrupted term and drops the connection); a node of
    // a release whose pids are wider takes it.
    let release = ok(
        &epmd,
        &["--cookie", COOKIE, "eval", a, "System.otp_release()"],
    );
    let wide = [
        "--cookie",
        COOKIE,
        "call",
        a,
        "Process.alive?",
        "#PID<0.32768.0>",
    ];
    if release == "\"25\"" {
        let e = fails(&epmd, &wide, 2);
        assert!(
            e.contains("<0.32768.0> is no pid of ") && e.contains("up to 32767"),
            "{e}"
        );
    } else {
        assert_eq!(ok(&epmd, &wide), "false");
    }
    assert_eq!(
        ok(
            &epmd,
            &[
                "--cookie",
                COOKIE,
                "call",
                a,
                "Process.alive?",
                "#PID<0.32767.8191>"
            ]
        ),
        "false"
    );
    // A result nested deeper than a node's default limit (iodata appended in a loop),
    // as a BEAM caller takes it.
    let deep = "Enum.reduce(1..20_000, [], fn x, acc -> [acc, x] end)";
    let shown = ok(&epmd, &["--cookie", COOKIE, "eval", a, deep]);
    assert!(shown.starts_with("[[[[") && shown.ends_with("19999], 20000]"));
    let shown = ok(&epmd, &["--cookie", COOKIE, "--json", "eval", a, deep]);
    assert!(shown.ends_with("19999],20000]"));
    // A ping from a name EPMD has already: pang, as for any ping that fails.
    let run = cnode(&epmd, &["--cookie", COOKIE, "--sname", a, "ping", a]);
    assert_eq!((run.code, run.stdout.trim()), (3, "pang"), "{}", run.stderr);
    // A long line is shown only around the place, not written out again whole.
    let long = format!("[{}2 x]", "1, ".repeat(10_000));
    let e = fails(
        &epmd,
        &["--cookie", COOKIE, "call", a, "Enum.sum", &long],
        2,
    );
    assert!(e.len() < 1_000, "{} bytes: {}", e.len(), &e[..1_000]);
    assert!(e.contains("\n  ...") && e.contains(" 1, 1, 2 x]\n"), "{e}");
    let caret = e.lines().last().unwrap_or("");
    let shown = e.lines().rev().nth(1).unwrap_or("");
    assert_eq!(shown.find("x]"), caret.find('^'), "{e}");
    // With --json, a usage error the command line's parser finds is an object too.
    let e = fails(&epmd, &["--cookie", COOKIE, "--json", "call", a], 2);
    assert!(
        e.starts_with(r#"{"error":"usage","message":"the following required arguments"#),
        "{e}"
    );
    // What cannot be written says why.
    let e = fails(
        &epmd,
        &[
            "--cookie",
            COOKIE,
            "call",
            a,
            "Enum.sum",
            "#Reference<0.1.2.3>",
        ],
        2,
    );
    assert!(e.contains("a reference cannot be written as a term"), "{e}");
    let e = fails(
        &epmd,
        &["--cookie", COOKIE, "call", a, "Enum.sum", "[x]"],
        2,
    );
    assert!(e.contains("x is a variable"), "{e}");
    let e = fails(&epmd, &["--cookie", COOKIE, "call", a, "sum", "1"], 2);
    assert!(e.contains("is not a function"), "{e}");
    fails(&epmd, &["ping"], 2);
    // A bare name is a node of this host, as erl_call -sname takes it: none here.
    let e = fails(&epmd, &["--cookie", COOKIE, "ping", "nobody_here"], 3);
    assert!(e.contains("nobody_here@"), "{e}");
    fails(&epmd, &["frobnicate"], 2);
    // Names that are no node names, ours or the target's: usage, said so.
    let e = fails(&epmd, &["--cookie", COOKIE, "ping", "nobody@"], 2);
    assert!(e.contains("\"nobody@\" is not a node name"), "{e}");
    let e = fails(
        &epmd,
        &["--cookie", COOKIE, "--sname", "bad name", "ping", a],
        2,
    );
    assert!(e.contains("--sname \"bad name@"), "{e}");
    // A short name with a long name's host, which `erl -sname` refuses.
    let e = fails(
        &epmd,
        &["--cookie", COOKIE, "--sname", "me@127.0.0.1", "ping", a],
        2,
    );
    assert!(e.contains("Can't set short node name!"), "{e}");

    // 3: nobody of that name; pang on stdout for ping.
    let run = cnode(&epmd, &["--cookie", COOKIE, "ping", "nobody@localhost"]);
    assert_eq!((run.code, run.stdout.trim()), (3, "pang"), "{}", run.stderr);
    fails(
        &epmd,
        &[
            "--cookie",
            COOKIE,
            "call",
            "nobody@localhost",
            "Enum.sum",
            "[]",
        ],
        3,
    );

    // 3 as well: no EPMD on the port, said so. The command's own node only connects
    // out, so it starts no EPMD either.
    let none = free_port();
    let run = Command::new(env!("CARGO_BIN_EXE_cnode"))
        .args(["--cookie", COOKIE, "ping", "nobody@localhost"])
        .env("ERL_EPMD_PORT", none.to_string())
        .output()
        .expect("cnode runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("no EPMD on localhost port {none}")),
        "{stderr}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", none)).is_err(),
        "something listens on {none} after the command"
    );

    // With --json, a failure that is no exception is an object too.
    let e = fails(
        &epmd,
        &[
            "--cookie",
            COOKIE,
            "--json",
            "call",
            "nobody@localhost",
            "Enum.sum",
            "[]",
        ],
        3,
    );
    assert!(
        e.starts_with(r#"{"error":"unreachable","message":"cnode: "#),
        "{e}"
    );

    // 4: the cookie.
    let run = cnode(&epmd, &["--cookie", "not_the_cookie", "ping", a]);
    assert_eq!((run.code, run.stdout.trim()), (4, "pang"), "{}", run.stderr);
    assert!(run.stderr.contains("the cookies differ"), "{}", run.stderr);

    // 5: no answer in time.
    let run = command(
        &epmd,
        &[
            "--cookie",
            COOKIE,
            "--timeout",
            "1",
            "eval",
            a,
            "Process.sleep(30_000)",
        ],
    )
    .output()
    .expect("cnode runs");
    assert_eq!(
        run.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // A node that never finishes the handshake (stopped): ping says pang, exit 5.
    let os_pid = alex.eval("System.pid()").trim_matches('"').to_owned();
    let signal = |sig: &str| {
        let sent = std::process::Command::new("kill")
            .args([sig, &os_pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
    };
    signal("-STOP");
    let run = command(&epmd, &["--cookie", COOKIE, "--timeout", "1", "ping", a])
        .output()
        .expect("cnode runs");
    signal("-CONT");
    let said = String::from_utf8_lossy(&run.stdout);
    let why = String::from_utf8_lossy(&run.stderr);
    assert_eq!((run.status.code(), said.trim()), (Some(5), "pang"), "{why}");

    // A Rust node runs the functions it registered, and evaluates no code.
    let moebi = RustNode::start(&unique_name("moebi"), COOKIE, &epmd, &[]);
    let m = moebi.node_name();
    assert_eq!(
        ok(&epmd, &["--cookie", COOKIE, "call", &m, "Moebi.say_name"]),
        "Hi, my name is Moebi\n:ok"
    );
    let e = fails(&epmd, &["--cookie", COOKIE, "eval", &m, "1 + 1"], 1);
    assert!(e.contains("evaluates no code"), "{e}");
    // A pid of another node, as one step prints it, read back by the next, on any node.
    let init = format!("#PID<{a}.0.0>");
    let echoed = ok(
        &epmd,
        &[
            "--cookie",
            COOKIE,
            "call",
            &m,
            "GenServer.call",
            &format!("{{:echo, :\"{m}\"}}"),
            &init,
        ],
    );
    assert_eq!(echoed, init);
    assert_eq!(
        ok(
            &epmd,
            &[
                "--cookie",
                COOKIE,
                "call",
                a,
                "Process.info",
                &echoed,
                ":registered_name"
            ]
        ),
        "{:registered_name, :init}"
    );

    // wait: for a node that is up, a name registered there; for one that comes up
    // later (a script's wait for the node it started), within --timeout or 5.
    assert_eq!(ok(&epmd, &["--cookie", COOKIE, "wait", a]), "pong");
    assert_eq!(
        ok(&epmd, &["--cookie", COOKIE, "wait", a, ":init"]),
        "#PID<0.0.0>"
    );
    let quick = |args: &[&str]| command(&epmd, args).output().expect("cnode runs");
    let t0 = std::time::Instant::now();
    let run = quick(&[
        "--cookie",
        COOKIE,
        "--timeout",
        "1",
        "wait",
        "nobody@localhost",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("nobody@localhost did not answer within 1s"),
        "{stderr}"
    );
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    let run = quick(&["--cookie", "not_the_cookie", "--timeout", "30", "wait", a]);
    assert_eq!(
        run.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // A node that is up under another name than the one waited for (127.0.0.2 is this
    // host too): exit 3 at once, as `net_adm:ping/1` gives `pang` at once; waiting
    // would not change it.
    let long = BeamNode::start_long(&unique_name("long"), COOKIE, &epmd);
    let other = long.node_name().replace("@127.0.0.1", "@127.0.0.2");
    let t0 = std::time::Instant::now();
    let run = quick(&["--cookie", COOKIE, "--timeout", "60", "wait", &other]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("but it calls itself {}", long.node_name())),
        "{stderr}"
    );
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    drop(long);
    let later = unique_name("later");
    let waiting = command(
        &epmd,
        &[
            "--cookie",
            COOKIE,
            "--timeout",
            "120",
            "wait",
            &format!("{later}@localhost"),
            "Chat.TaskSupervisor",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("cnode runs");
    let started = RustNode::start(&later, COOKIE, &epmd, &[]);
    let run = waiting.wait_with_output().expect("cnode ends");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.starts_with("#PID<0."), "{stdout}");
    drop(started);

    // stdin is one argument's: a second `-` is usage, said so.
    let mut twice = command(
        &epmd,
        &["--cookie", COOKIE, "call", a, "Kernel.+", "-", "-"],
    )
    .stdin(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("cnode runs");
    {
        use std::io::Write as _;
        twice.stdin.take().unwrap().write_all(b"1").unwrap();
    }
    let twice = twice.wait_with_output().expect("cnode ends");
    let stderr = String::from_utf8_lossy(&twice.stderr);
    assert_eq!(twice.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("stdin was read for an earlier one"),
        "{stderr}"
    );

    // A closed stdout (`| head -c5`): 141, as a program SIGPIPE ends, not a panic.
    let mut child = command(
        &epmd,
        &["--cookie", COOKIE, "call", a, "Enum.to_list", "1..300000"],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("cnode runs");
    drop(child.stdout.take());
    let run = child.wait_with_output().expect("cnode ends");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(141), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("rust_panic"),
        "{stderr}"
    );

    // The cookie as erl finds it: under XDG_CONFIG_HOME's default when there is no
    // ~/.erlang.cookie (none made then); one others may read refused, as erl refuses it.
    let home = std::env::temp_dir().join(unique_name("cnode_home"));
    let xdg = home.join(".config/erlang");
    std::fs::create_dir_all(&xdg).unwrap();
    let with_home = |args: &[&str]| {
        command(&epmd, args)
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .expect("cnode runs")
    };
    let write_cookie = |path: &std::path::Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, COOKIE).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // $RELEASE_COOKIE before any file, as an Elixir release reads it (a probe in a
    // container keeps the cookie out of the process list).
    let run = command(&epmd, &["ping", a])
        .env("HOME", &home)
        .env("RELEASE_COOKIE", COOKIE)
        .output()
        .expect("cnode runs");
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "pong",
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(!home.join(".erlang.cookie").exists());
    write_cookie(&xdg.join(".erlang.cookie"), 0o400);
    let run = with_home(&["ping", a]);
    assert_eq!(
        (
            run.status.code(),
            String::from_utf8_lossy(&run.stdout).trim()
        ),
        (Some(0), "pong"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(!home.join(".erlang.cookie").exists());
    write_cookie(&home.join(".erlang.cookie"), 0o644);
    let run = with_home(&["ping", a]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("must be accessible by owner only"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&home);

    // The node is no worse for any of it.
    assert_eq!(
        ok(
            &epmd,
            &["--cookie", COOKIE, "call", a, "Enum.sum", "[1, 2, 3]"]
        ),
        "6"
    );
}

/// `erl_call`, erl_interface's command (and so any C node), reaches a Rust node as it
/// reaches a BEAM node: its answer comes back in a `SEND` whose unused field is the
/// empty atom, as the BEAM writes it (erl_interface reads an atom there).
#[test]
fn erl_call_reaches_a_rust_node_as_a_beam_node() {
    let epmd = Epmd::start();
    let moebi = RustNode::start(&unique_name("moebi"), COOKIE, &epmd, &[]);
    let lib = Command::new("erl")
        .args([
            "-noshell",
            "-eval",
            "io:put_chars(code:lib_dir(erl_interface)), halt().",
        ])
        .output()
        .expect("erl runs");
    let erl_call = format!("{}/bin/erl_call", String::from_utf8_lossy(&lib.stdout));
    let m = moebi.node_name();
    for (call, answer) in [
        ("erlang node", m.as_str()),
        ("Elixir.Chat receive_message [\"from erl_call\"]", "ok"),
    ] {
        let out = Command::new(&erl_call)
            .args(["-n", &m, "-c", COOKIE, "-a", call])
            .env("ERL_EPMD_PORT", epmd.port().to_string())
            .output()
            .expect("erl_call runs");
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).trim()
            ),
            (Some(0), answer),
            "{call}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            moebi.log()
        );
    }
}
