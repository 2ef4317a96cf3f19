//! Group-leader I/O (the Erlang I/O protocol, `io.erl` / `group.erl`).
//!
//! Output goes through a process's group leader, as the seed's note on I/O explains: a
//! process a BEAM node spawns here keeps the caller's group leader, so its output appears
//! on the caller's terminal; tasks started by our own `Task.Supervisor` have our `user`
//! process as group leader and print on this node's standard output. `user` is an I/O
//! server BEAM processes can write to as well. Log events go the same way: a crash here
//! of a process whose group leader is on a BEAM node is reported there too, and
//! `logger_proxy` takes in what BEAM nodes log for processes whose group leader is here.

use crate::node::Node;
use crate::process::{Dest, Exception, Process};
use crate::term::display::{erlang_with, Strings};
use crate::term::Inspect;
use crate::term::Short;
use crate::term::{
    atom, binary, chardata_to_string, charlist, int, list, map, nil, tuple, Match, Pid, Term,
};
use std::time::Duration;

/// Starts this node's `user` process and makes it the default group leader.
pub(crate) fn start_user(node: &Node) {
    let pid = node
        .spawn_registered("user", |mut p| async move {
            let mut opts = Opts::default();
            let mut suspended = false;
            loop {
                // `sys` requests are answered, as OTP 26+'s `user` (a gen_statem) does.
                let state = || opts.get();
                let message =
                    match super::sys::receive(&mut p, None, &mut suspended, &state, None).await {
                        Ok(message) => message,
                        Err(reason) => {
                            // The node's output goes through it: it goes on.
                            tracing::warn!("user: asked to stop ({}); it goes on", Short(&reason));
                            continue;
                        }
                    };
                let Some(e) = message.as_tuple_n(4).filter(|e| e[0].is_atom("io_request")) else {
                    if !message
                        .as_tuple()
                        .map(|e| e.first().is_some_and(|t| t.is_atom("io_reply")))
                        .unwrap_or(false)
                    {
                        tracing::debug!("user: ignoring {}", Short(&message));
                    }
                    continue;
                };
                let (Some(from), reply_as) = (e[1].as_pid(), &e[2]) else {
                    continue;
                };
                let reply = io_request(&e[3], &mut opts);
                p.send(from, tuple(vec![atom("io_reply"), reply_as.clone(), reply]));
            }
        })
        .expect("`user` is registered first, at node start");
    node.set_user_pid(pid);
}

/// Starts `logger_proxy`, where a BEAM node's `logger` sends the events of its processes
/// whose group leader is on this node (a process a Rust process spawned there, an erpc
/// call it made, logging or crashing), as it does for a group leader on any other node:
/// `{log, Level, Format, Args, Meta}` or `{log, Level, StringOrReport, Meta}`. They are
/// logged here through `tracing`, as this node's own events: where a BEAM caller prints
/// them on its console. A report is printed as a term (its `report_cb` is BEAM code);
/// SASL reports at debug level, as a BEAM's default handler leaves them out.
pub(crate) fn start_logger_proxy(node: &Node) {
    let _ = super::keep_registered(node, "logger_proxy", |mut p, parent| async move {
        super::shown_as_gen_server(&p, parent, "logger_olp");
        let mut suspended = false;
        loop {
            let state = || map(Vec::new());
            let message =
                super::sys::receive(&mut p, Some(&parent), &mut suspended, &state, None).await;
            let message = message.map_err(Exception::Exit)?;
            match remote_event(&message) {
                Some((level, text, pid)) => log_remote_event(level, &text, pid),
                None => tracing::debug!("logger_proxy: ignoring {}", Short(&message)),
            }
        }
    });
}

/// The level, the text and the logging process of a `logger_proxy` event.
fn remote_event(message: &Term) -> Option<(&str, String, Option<Pid>)> {
    let e = message
        .as_tuple()
        .filter(|e| e.first().is_some_and(|t| t.is_atom("log")))?;
    let (level, text, meta) = match e {
        [_, level, format, args, meta] => {
            let format = match format {
                Term::Atom(a) => a.name().to_owned(),
                other => chardata_to_string(other)?,
            };
            let args = args.as_list()?;
            // As OTP's logger prints an event whose format does not apply.
            let text = format_erlang(&format, args).unwrap_or_else(|| {
                format!(
                    "FORMAT ERROR: {:?} - {}",
                    format,
                    list(args.to_vec()).erlang()
                )
            });
            (level, text, meta)
        }
        [_, level, what, meta] => {
            let text = chardata_to_string(what).unwrap_or_else(|| what.to_string());
            (level, text, meta)
        }
        _ => return None,
    };
    let meta = match meta {
        Term::Map(m) => Some(&m.map),
        _ => None,
    };
    let pid = meta.and_then(|m| m.get(&atom("pid"))?.as_pid().copied());
    // SASL reports (a process's crash report beside Elixir's report of the task, a
    // supervisor's progress), which the BEAM's default handler leaves out unless SASL
    // logging is asked for: here at debug level.
    let sasl = meta
        .and_then(|m| m.get(&atom("domain"))?.as_list())
        .is_some_and(|d| d.len() >= 2 && d[0].is_atom("otp") && d[1].is_atom("sasl"));
    let level = if sasl { "debug" } else { level.as_atom()? };
    Some((level, text, pid))
}

/// Logs a BEAM node's event under the target `cnode::logger_proxy` (so
/// `RUST_LOG=cnode::logger_proxy=warn` picks them out), at its level.
fn log_remote_event(level: &str, text: &str, pid: Option<Pid>) {
    const TARGET: &str = "cnode::logger_proxy";
    let pid = pid.map(|p| p.inspect().to_string()).unwrap_or_default();
    match level {
        "emergency" | "alert" | "critical" | "error" => {
            tracing::error!(target: TARGET, %pid, "{text}")
        }
        "warning" => tracing::warn!(target: TARGET, %pid, "{text}"),
        "notice" | "info" => tracing::info!(target: TARGET, %pid, "{text}"),
        _ => tracing::debug!(target: TARGET, %pid, "{text}"),
    }
}

/// The options of `user` that `io:setopts/2` sets and `io:getopts/1` reads.
struct Opts {
    /// Whether reading gives binaries (`binary`) or lists (`list`).
    binary: bool,
    /// `unicode` or `latin1`.
    unicode: bool,
}

/// As an Elixir node's `user`: Elixir sets `binary` at boot.
impl Default for Opts {
    fn default() -> Self {
        Opts {
            binary: true,
            unicode: true,
        }
    }
}

impl Opts {
    /// `io:setopts/2`: `{error, enotsup}` for an option this server does not have, as
    /// OTP's `user` answers, leaving the others unchanged.
    fn set(&mut self, options: &Term) -> Term {
        let mut next = Opts { ..*self };
        for option in options.as_list().unwrap_or(&[]) {
            let (key, value) = match option {
                Term::Atom(a) => match a.name() {
                    "binary" => ("binary", "true"),
                    "list" => ("binary", "false"),
                    _ => ("", ""),
                },
                o => match o.as_tuple_n(2) {
                    Some([Term::Atom(k), Term::Atom(v)]) => (k.name(), v.name()),
                    _ => ("", ""),
                },
            };
            match (key, value) {
                ("binary", "true") => next.binary = true,
                ("binary", "false") => next.binary = false,
                ("encoding", "unicode" | "utf8") => next.unicode = true,
                ("encoding", "latin1") => next.unicode = false,
                _ => return tuple(vec![atom("error"), atom("enotsup")]),
            }
        }
        *self = next;
        atom("ok")
    }

    /// `io:getopts/1`: `[{binary, B}, {encoding, E}]`, as OTP's `user` gives them.
    fn get(&self) -> Term {
        let encoding = if self.unicode { "unicode" } else { "latin1" };
        list(vec![
            tuple(vec![atom("binary"), crate::term::boolean(self.binary)]),
            tuple(vec![atom("encoding"), atom(encoding)]),
        ])
    }
}

/// Serves one I/O request (`{put_chars, ...}`, `{requests, [...]}`, ...).
fn io_request(request: &Term, opts: &mut Opts) -> Term {
    // `io:getopts/1` sends the bare atom.
    if request.is_atom("getopts") {
        return opts.get();
    }
    let Some(e) = request.as_tuple() else {
        return error_request();
    };
    match (e.first().and_then(Match::as_atom), e.len()) {
        (Some("put_chars"), 3) | (Some("put_chars"), 2) => {
            match chardata_to_string(&e[e.len() - 1]) {
                Some(text) => {
                    write_stdout(&text);
                    atom("ok")
                }
                None => error_request(),
            }
        }
        (Some("put_chars"), 5) => {
            // {put_chars, Enc, io_lib, format, [Format, Args]}: what io:format sends. A
            // format io_lib cannot apply is `{error, format}`, as `group` answers (the
            // caller's `io:format` raises `badarg`).
            match (e[2].as_atom(), e[3].as_atom(), e[4].as_list()) {
                (Some("io_lib"), Some("format"), Some([fmt, args])) => {
                    let text = chardata_to_string(fmt)
                        .zip(args.as_list())
                        .and_then(|(fmt, args)| format_erlang(&fmt, args));
                    match text {
                        Some(text) => {
                            write_stdout(&text);
                            atom("ok")
                        }
                        None => tuple(vec![atom("error"), atom("format")]),
                    }
                }
                _ => error_request(),
            }
        }
        (Some("requests"), 2) => {
            let mut last = atom("ok");
            for r in e[1].as_list().unwrap_or(&[]) {
                last = io_request(r, opts);
                if !last.is_atom("ok") {
                    break;
                }
            }
            last
        }
        (Some("setopts"), 2) => opts.set(&e[1]),
        (Some("get_geometry"), 2) => tuple(vec![atom("error"), atom("enotsup")]),
        // No keyboard behind this node's `user`: reading finds end of input. Scanning
        // tokens (`io:scan_erl_exprs/2`, `io:read/1`) ends as `erl_scan:tokens/3` does
        // at end of input, `{eof, Location}`.
        (Some("get_until"), 5 | 6) => match &e[e.len() - 3..] {
            [m, f, args] if m.is_atom("erl_scan") && f.is_atom("tokens") => match args.as_list() {
                Some([location, ..]) => tuple(vec![atom("eof"), location.clone()]),
                _ => atom("eof"),
            },
            _ => atom("eof"),
        },
        (Some("get_chars" | "get_line" | "get_password"), _) => atom("eof"),
        _ => error_request(),
    }
}

/// Whether `reason` is a Rust panic's exit reason, `{{rust_panic, Message}, Stack}`.
pub(crate) fn is_rust_panic(reason: &Term) -> bool {
    reason
        .as_tuple()
        .and_then(|r| r.first())
        .and_then(|r| r.as_tuple_n(2))
        .is_some_and(|p| p[0].is_atom("rust_panic"))
}

/// The emulator's report of a process that died of an error (`erts_send_error_to_logger`):
/// logged here, or, when the group leader lives on another node, sent to that node's
/// logger (see [`log_at_group_leader`]), so a BEAM user who spawned the process here sees
/// `Process #PID<…> on node … raised an exception` on their terminal, and logged here
/// at debug level only, as a BEAM node's default handler drops an event whose group
/// leader is remote (`logger_filters:remote_gl/2`; Elixir's since 1.15), unless it is
/// a Rust panic.
pub(crate) fn report_crash(node: &Node, pid: &Pid, group_leader: &Pid, reason: &Term) {
    // A panic is a fault of this node's Rust code: said here whatever the group leader
    // (the BEAM's logger filters out a crash whose group leader is remote), as a panic
    // answered over rpc is.
    let panicked = is_rust_panic(reason);
    let shown = crate::term::display::local_pid(pid, node.name());
    if node.is_local(&group_leader.node) || panicked {
        tracing::error!(
            pid = %shown,
            "Error in process {} on node {} with exit value: {}",
            shown,
            node.name(),
            Short(reason)
        );
    } else {
        tracing::debug!(
            pid = %shown,
            group_leader = %group_leader.inspect(),
            "Error in process {} on node {} with exit value: {}",
            shown,
            node.name(),
            Short(reason)
        );
    }
    log_at_group_leader(node, pid, group_leader, || {
        let event = vec![
            atom("error"),
            charlist("Error in process ~p on node ~p with exit value:~n~p~n"),
            list(vec![Term::Pid(*pid), atom(node.name()), reason.clone()]),
        ];
        let meta = vec![(
            atom("error_logger"),
            map([
                (atom("emulator"), atom("true")),
                (atom("tag"), atom("error")),
            ]),
        )];
        (event, meta)
    });
}

/// Sends a log event of process `pid` to the logger of its group leader's node when
/// that is another node, as OTP's `logger:log_remote/2` does: `{log, Level, Format,
/// Args, Meta}` or `{log, Level, Report, Meta}` to `logger_proxy` there, which logs it
/// as if it were that node's own (its default handler prints it on that node's
/// terminal; OTP's default handler drops events whose group leader is remote).
/// `event` makes the tuple's middle (level, then format and args, or the report) and
/// the metadata besides `gl`, `pid` and `time`; nothing is made when the group leader
/// is ours.
pub(crate) fn log_at_group_leader(
    node: &Node,
    pid: &Pid,
    group_leader: &Pid,
    event: impl FnOnce() -> (Vec<Term>, Vec<(Term, Term)>),
) {
    if node.is_local(&group_leader.node) {
        return;
    }
    let (event, meta) = event();
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let meta = meta.into_iter().chain([
        (atom("gl"), Term::Pid(*group_leader)),
        (atom("pid"), Term::Pid(*pid)),
        (atom("time"), int(time)),
    ]);
    let mut elements = Vec::with_capacity(event.len() + 2);
    elements.push(atom("log"));
    elements.extend(event);
    elements.push(map(meta));
    let proxy = Dest::from(("logger_proxy", group_leader.node.name()));
    node.route(pid, proxy, tuple(elements));
}

/// `io:format/1,2`, `io:fwrite/1,2`, `io:put_chars/1` and `io:nl/0` for a caller over
/// rpc: the text goes through the process's group leader (the caller's, so it prints on
/// the caller's terminal, as from a BEAM node); a format `io_lib` cannot apply raises
/// `badarg` with `io`'s frame, as there.
pub(crate) fn register_functions(node: &Node) {
    for name in ["format", "fwrite"] {
        node.register_function("io", name, 1, move |p, args| async move {
            let gl = Device::Server(p.group_leader());
            print_formatted(p, name, gl, &args[0], &nil(), args.clone()).await
        });
        node.register_function("io", name, 2, move |p, args| async move {
            let gl = Device::Server(p.group_leader());
            print_formatted(p, name, gl, &args[0], &args[1], args.clone()).await
        });
    }
    // With a device: `standard_io` (the group leader), `user` (this node's terminal),
    // `standard_error`, or an I/O server's pid or name.
    for name in ["format", "fwrite"] {
        node.register_function("io", name, 3, move |p, args| async move {
            let device = device(&p, &args[0]).ok_or_else(|| io_badarg(name, args.clone()))?;
            print_formatted(p, name, device, &args[1], &args[2], args.clone()).await
        });
    }
    node.register_function("io", "put_chars", 2, |mut p, args| async move {
        let device = device(&p, &args[0]).ok_or_else(|| io_badarg("put_chars", args.clone()))?;
        let text =
            chardata_to_string(&args[1]).ok_or_else(|| io_badarg("put_chars", args.clone()))?;
        put_on(&mut p, device, &text).await
    });
    node.register_function("io", "nl", 1, |mut p, args| async move {
        let device = device(&p, &args[0]).ok_or_else(|| io_badarg("nl", args.clone()))?;
        put_on(&mut p, device, "\n").await
    });
    node.register_function("io", "put_chars", 1, |mut p, args| async move {
        let text =
            chardata_to_string(&args[0]).ok_or_else(|| io_badarg("put_chars", args.clone()))?;
        p.put_chars(&text).await?;
        Ok(atom("ok"))
    });
    node.register_function("io", "nl", 0, |mut p, _| async move {
        p.put_chars("\n").await?;
        Ok(atom("ok"))
    });
    // Elixir's `IO.puts/1,2` and `IO.write/1,2`, as the lesson calls them over rpc,
    // with a device as Elixir names one (`:stdio`, `:stderr`, a pid or a name).
    for (name, newline) in [("puts", "\n"), ("write", "")] {
        node.register_function("Elixir.IO", name, 1, move |mut p, args| async move {
            let text = crate::term::puts_text(&args[0])
                .ok_or_else(|| io_badarg("put_chars", args.clone()))?;
            p.put_chars(&format!("{text}{newline}")).await?;
            Ok(atom("ok"))
        });
        node.register_function("Elixir.IO", name, 2, move |mut p, args| async move {
            let device = elixir_device(&p, &args[0]);
            let text = crate::term::puts_text(&args[1]);
            let (Some(device), Some(text)) = (device, text) else {
                return Err(io_badarg("put_chars", args.clone()));
            };
            put_on(&mut p, device, &format!("{text}{newline}")).await
        });
    }
    // `IO.inspect/1,2`: the term as Elixir inspects it (on one line), after its `label:`
    // when given, through the group leader; the term is the result.
    node.register_function("Elixir.IO", "inspect", 1, |mut p, args| async move {
        let term = args.into_iter().next().unwrap_or_else(nil);
        p.put_chars(&format!("{}\n", term.inspect())).await?;
        Ok(term)
    });
    node.register_function("Elixir.IO", "inspect", 2, |mut p, args| async move {
        let label = args[1]
            .as_list()
            .and_then(|opts| {
                opts.iter()
                    .find_map(|o| o.as_tuple_n(2).filter(|o| o[0].is_atom("label")))
            })
            .map(|o| format!("{}: ", crate::term::puts_text(&o[1]).unwrap_or_default()));
        let term = args[0].clone();
        let line = format!("{}{}\n", label.unwrap_or_default(), term.inspect());
        p.put_chars(&line).await?;
        Ok(term)
    });
}

/// A device as Elixir's `IO` names it: `:stdio` and `:stderr` as well as Erlang's.
fn elixir_device(p: &Process, device: &Term) -> Option<Device> {
    match device {
        d if d.is_atom("stdio") => Some(Device::Server(p.group_leader())),
        d if d.is_atom("stderr") => Some(Device::StandardError),
        d => self::device(p, d),
    }
}

/// Where `io:format/3` and `put_chars/2` write: `None` for what is no device.
enum Device {
    Server(Pid),
    StandardError,
}

fn device(p: &Process, device: &Term) -> Option<Device> {
    match device {
        Term::Pid(pid) => Some(Device::Server(*pid)),
        d if d.is_atom("standard_io") => Some(Device::Server(p.group_leader())),
        d if d.is_atom("standard_error") => Some(Device::StandardError),
        Term::Atom(name) => p.node().whereis(name.name()).map(Device::Server),
        _ => None,
    }
}

async fn put_on(p: &mut Process, device: Device, text: &str) -> Result<Term, Exception> {
    match device {
        Device::Server(pid) => p.put_chars_to(pid, text).await?,
        Device::StandardError => eprint!("{text}"),
    }
    Ok(atom("ok"))
}

async fn print_formatted(
    mut p: Process,
    name: &'static str,
    device: Device,
    fmt: &Term,
    args: &Term,
    called_with: Vec<Term>,
) -> Result<Term, Exception> {
    // To an I/O server of another node, the request goes as io:format sends it, and
    // that node formats it: the text is what its io_lib makes (`~p` broken over lines at
    // 80 columns, `~P` cut at its depth), and a format it cannot apply is its `{error,
    // _}`, which raises `badarg` as io's `o_request` raises it.
    if let Device::Server(server) = device {
        if !p.node().is_local(&server.node) {
            let request = tuple(vec![
                atom("put_chars"),
                atom("unicode"),
                atom("io_lib"),
                atom("format"),
                list(vec![fmt.clone(), args.clone()]),
            ]);
            return match p.io_request_to(server, request).await? {
                reply if reply.is_atom("ok") => Ok(reply),
                _ => Err(io_badarg(name, called_with)),
            };
        }
    }
    let text = chardata_to_string(fmt)
        .zip(args.as_list())
        .and_then(|(fmt, args)| format_erlang(&fmt, args))
        .ok_or_else(|| io_badarg(name, called_with))?;
    put_on(&mut p, device, &text).await
}

/// `badarg` from `io:Name/Arity`, with its frame.
fn io_badarg(name: &str, args: Vec<Term>) -> Exception {
    Exception::Error {
        reason: atom("badarg"),
        stacktrace: vec![tuple(vec![atom("io"), atom(name), list(args), nil()])],
    }
}

fn error_request() -> Term {
    tuple(vec![atom("error"), atom("request")])
}

/// Hands `text` to standard output's own thread: a stdout nobody reads does not stall
/// the node (`crate::output`).
fn write_stdout(text: &str) {
    crate::output::stdout().write(text.as_bytes());
}

/// `io_lib:format/2` for what programs send to a remote group leader and log: `~p ~w
/// ~s ~c ~n ~i ~~`, `~P ~W` (the depth is not applied), integers in a base (`~b ~B`,
/// `~x ~X` with their prefix, `~# ~+`), floats (`~f ~e ~g`), with a field width,
/// precision and padding character (`~-10.5s`, `~8.2.0B`, `~*.*f`), left or right
/// adjusted, `***` where a number or term does not fit its field, as `io_lib` writes
/// them; `~w` prints no list or binary as text, `~tp` Unicode text as such
/// (`<<"ü"/utf8>>`), the `l` modifier is read (`~p` of a list of codes prints it as a
/// string either way, and `~p` does not break long terms over lines). Terms print in
/// Erlang's syntax. `None` where `io_lib:format/2` raises `badarg`: a control it does
/// not have, an argument of the wrong type, too few or too many arguments.
fn format_erlang(fmt: &str, args: &[Term]) -> Option<String> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        let spec = Spec::read(&mut chars, &mut args)?;
        let control = chars.next()?;
        out.push_str(&spec.apply(control, &mut args)?);
    }
    args.next().is_none().then_some(out)
}

/// A control sequence's field width (negative: left adjusted), precision and padding
/// character: `~F.P.PadC`.
struct Spec {
    width: Option<i64>,
    precision: Option<i64>,
    pad: char,
    /// The `t` modifier: Unicode text, as `~tp` and `~ts` take it.
    unicode: bool,
}

impl Spec {
    fn read<'a>(
        chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
        args: &mut impl Iterator<Item = &'a Term>,
    ) -> Option<Spec> {
        let mut number =
            |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Option<Option<i64>> {
                if chars.peek() == Some(&'*') {
                    chars.next();
                    return Some(Some(args.next()?.as_int()?));
                }
                let negative = chars.peek() == Some(&'-');
                if negative {
                    chars.next();
                }
                let mut digits = String::new();
                while let Some(c) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(c);
                    chars.next();
                }
                if digits.is_empty() {
                    return if negative { None } else { Some(None) };
                }
                let n: i64 = digits.parse().ok()?;
                Some(Some(if negative { -n } else { n }))
            };
        let width = number(chars)?;
        let mut precision = None;
        let mut pad = ' ';
        if chars.peek() == Some(&'.') {
            chars.next();
            precision = number(chars)?;
            if chars.peek() == Some(&'.') {
                chars.next();
                pad = match chars.next()? {
                    '*' => u32::try_from(args.next()?.as_int()?)
                        .ok()
                        .and_then(char::from_u32)?,
                    c => c,
                };
            }
        }
        let mut unicode = false;
        while let Some(m) = chars
            .peek()
            .copied()
            .filter(|c| matches!(c, 't' | 'l' | 'k'))
        {
            unicode |= m == 't';
            chars.next();
        }
        Some(Spec {
            width,
            precision,
            pad,
            unicode,
        })
    }

    /// The field width and whether the text goes to its left.
    fn field(&self) -> (Option<usize>, bool) {
        match self.width {
            Some(w) => (usize::try_from(w.unsigned_abs()).ok(), w < 0),
            None => (None, false),
        }
    }

    fn precision(&self) -> Option<usize> {
        self.precision.and_then(|p| usize::try_from(p).ok())
    }

    /// `text` padded to `width`, on the side `left` says.
    fn adjust(&self, text: String, width: usize, left: bool) -> String {
        let len = text.chars().count();
        if len >= width {
            return text;
        }
        let padding: String = std::iter::repeat_n(self.pad, width - len).collect();
        if left {
            text + &padding
        } else {
            padding + &text
        }
    }

    /// `io_lib_format:term/5`: a term or number in its field, `*`s when it does not
    /// fit.
    fn term(&self, text: String) -> String {
        let (width, left) = self.field();
        let Some(width) = width.or(self.precision()) else {
            return text;
        };
        let room = self.precision().map_or(width, |p| p.min(width));
        if text.chars().count() > room {
            let stars: String = std::iter::repeat_n('*', room).collect();
            return self.adjust(stars, width, left);
        }
        self.adjust(text, width, left)
    }

    /// `io_lib_format:string/5`: cut to the precision (or the field), padded to the
    /// field.
    fn string(&self, text: String) -> Option<String> {
        let (width, left) = self.field();
        let cut = |t: String, n: usize| t.chars().take(n).collect::<String>();
        Some(match (width, self.precision()) {
            (None, None) => text,
            (Some(w), None) => self.adjust(cut(text, w), w, left),
            (None, Some(p)) => self.adjust(cut(text, p), p, true),
            (Some(w), Some(p)) if w >= p => {
                let text = self.adjust(cut(text, p), p, true);
                self.adjust(text, w, left)
            }
            _ => return None,
        })
    }

    fn apply<'a>(
        &self,
        control: char,
        args: &mut impl Iterator<Item = &'a Term>,
    ) -> Option<String> {
        Some(match control {
            'n' => "\n".to_owned(),
            '~' => "~".to_owned(),
            'i' => {
                args.next()?;
                String::new()
            }
            's' => {
                let text = match args.next()? {
                    Term::Atom(name) => name.name().to_owned(),
                    a if a.as_int().is_some() => return None,
                    a => chardata_to_string(a)?,
                };
                self.string(text)?
            }
            'c' => {
                let ch = args.next()?.as_int()?;
                let ch = u32::try_from(ch).ok().and_then(char::from_u32)?;
                let (width, left) = self.field();
                let count = self.precision().or(width).unwrap_or(1);
                let text: String = std::iter::repeat_n(ch, count).collect();
                match width {
                    Some(w) if w >= count => self.adjust(text, w, left),
                    Some(_) => return None,
                    None => text,
                }
            }
            control @ ('b' | 'B' | 'x' | 'X' | '#' | '+') => {
                let base = match self.precision {
                    None => 10,
                    Some(p) => u32::try_from(p).ok().filter(|b| (2..=36).contains(b))?,
                };
                // The number, then (`~x`, `~X`) its prefix.
                let a = args.next()?;
                let prefix = match control {
                    'x' | 'X' => match args.next()? {
                        Term::Atom(a) => a.name().to_owned(),
                        p => chardata_to_string(p)?,
                    },
                    '#' | '+' => format!("{base}#"),
                    _ => String::new(),
                };
                let lower = matches!(control, 'b' | 'x' | '+');
                let digits = match (a.as_int(), a) {
                    (Some(i), _) => in_base(i, base),
                    (None, Term::BigInteger(b)) => b.value.to_str_radix(base).to_uppercase(),
                    _ => return None,
                };
                let digits = if lower { digits.to_lowercase() } else { digits };
                let text = match digits.strip_prefix('-') {
                    Some(magnitude) => format!("-{prefix}{magnitude}"),
                    None => format!("{prefix}{digits}"),
                };
                self.number(text)
            }
            'f' => {
                let Term::Float(x) = args.next()? else {
                    return None;
                };
                // At least one decimal: `~.0f` is a badarg there.
                let digits = self.precision().unwrap_or(6);
                if digits == 0 {
                    return None;
                }
                self.number(fixed(x.value, digits))
            }
            control @ ('e' | 'g') => {
                let Term::Float(x) = args.next()? else {
                    return None;
                };
                let digits = self.precision().unwrap_or(6).max(2);
                self.number(float_e_or_g(x.value, digits, control == 'g'))
            }
            control @ ('w' | 'W') => {
                // `io_lib:write`: no list or binary as text.
                let text = erlang_with(args.next()?, Strings::None);
                if control == 'W' {
                    // The depth.
                    args.next()?.as_int()?;
                }
                self.term(text)
            }
            control @ ('p' | 'P') => {
                // The field is the line's length there, and left adjustment a badarg.
                if self.width.is_some_and(|w| w < 0) {
                    return None;
                }
                let strings = match self.unicode {
                    true => Strings::Unicode,
                    false => Strings::Latin1,
                };
                let text = erlang_with(args.next()?, strings);
                if control == 'P' {
                    args.next()?.as_int()?;
                }
                text
            }
            _ => return None,
        })
    }

    /// A number in its field: `*`s when it does not fit (the precision is the number's
    /// own, not the field's).
    fn number(&self, text: String) -> String {
        let (width, left) = self.field();
        match width {
            Some(w) if text.chars().count() > w => std::iter::repeat_n('*', w).collect(),
            Some(w) => self.adjust(text, w, left),
            None => text,
        }
    }
}

/// `x` with `digits` decimals, a half rounded away from zero as OTP's `float_to_list`
/// rounds it (`~.1f` of 2.25 is `2.3`; Rust's formatting gives `2.2`): the value's
/// exact decimal expansion, well past the last digit kept, rounded by hand.
fn fixed(x: f64, digits: usize) -> String {
    let long = format!("{:.*}", digits + 40, x.abs());
    let (kept, rest) = long.split_at(long.len() - 40);
    let mut kept: Vec<u8> = kept.trim_end_matches('.').bytes().collect();
    if rest.as_bytes()[0] >= b'5' {
        // Add one to the last digit kept, carrying.
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, b'1');
                break;
            }
            i -= 1;
            match kept[i] {
                b'.' => continue,
                b'9' => kept[i] = b'0',
                d => {
                    kept[i] = d + 1;
                    break;
                }
            }
        }
    }
    let text = String::from_utf8(kept).expect("digits");
    // The sign stays when the digits round to zero (`-0.0`), as there.
    if x.is_sign_negative() {
        format!("-{text}")
    } else {
        text
    }
}

/// `~.Pe` (`1.50000e+0`: `P` significant digits) and `~.Pg` (as `~f` with `P`
/// significant digits for 0.1 <= |x| < 10^P, else as `~e`).
fn float_e_or_g(x: f64, digits: usize, g: bool) -> String {
    let magnitude = x.abs();
    if g && (0.1..10f64.powi(digits as i32)).contains(&magnitude) {
        let whole = magnitude.log10().floor() as i64 + 1;
        let decimals = usize::try_from(digits as i64 - whole).unwrap_or(0);
        return format!("{x:.decimals$}");
    }
    let e = format!("{:.*e}", digits - 1, x);
    match e.split_once('e') {
        Some((mantissa, exp)) if exp.starts_with('-') => format!("{mantissa}e{exp}"),
        Some((mantissa, exp)) => format!("{mantissa}e+{exp}"),
        None => e,
    }
}

/// `i` in `base` (2 to 36), with capital letters, as `~.16B` writes it.
fn in_base(i: i64, base: u32) -> String {
    let mut digits = Vec::new();
    let mut n = i.unsigned_abs();
    loop {
        let d = u32::try_from(n % u64::from(base)).expect("a digit is below the base");
        digits.push(
            char::from_digit(d, base)
                .expect("a digit")
                .to_ascii_uppercase(),
        );
        n /= u64::from(base);
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        digits.push('-');
    }
    digits.iter().rev().collect()
}

impl Process {
    /// `IO.puts(text)`: writes `text` and a newline through this process's group leader.
    pub async fn puts(&mut self, text: &str) -> Result<(), Exception> {
        self.put_chars(&format!("{text}\n")).await
    }

    /// `IO.write(text)` through the group leader (`io:request(GL, {put_chars, unicode, Text})`).
    pub async fn put_chars(&mut self, text: &str) -> Result<(), Exception> {
        let gl = self.group_leader();
        self.put_chars_to(gl, text).await
    }

    /// `io:put_chars(Device, Text)` to the I/O server `gl`.
    pub(crate) async fn put_chars_to(&mut self, gl: Pid, text: &str) -> Result<(), Exception> {
        if gl == self.node().user_pid() {
            write_stdout(text);
            return Ok(());
        }
        let request = tuple(vec![atom("put_chars"), atom("unicode"), binary(text)]);
        match self.io_request_to(gl, request).await? {
            reply if reply.is_atom("ok") => Ok(()),
            reply => Err(Exception::bare(reply)),
        }
    }

    /// `io:request(Server, Request)`: the I/O server's reply. A server that is gone
    /// raises `terminated`, as io's functions do; one that has not answered in a minute
    /// `timeout`.
    pub(crate) async fn io_request_to(
        &mut self,
        gl: Pid,
        request: Term,
    ) -> Result<Term, Exception> {
        let reply_as = self.monitor(gl);
        let reply_term = Term::Reference(Box::new(reply_as.clone()));
        self.send(
            Dest::Pid(gl),
            tuple(vec![
                atom("io_request"),
                Term::Pid(self.pid()),
                reply_term.clone(),
                request,
            ]),
        );
        let reply = self
            .receive_match(Some(Duration::from_secs(60)), |m| {
                m.as_tuple_n(3)
                    .map(|e| e[0].is_atom("io_reply") && e[1] == reply_term)
                    .unwrap_or(false)
                    || crate::process::handle::is_down_for(m, &reply_as)
            })
            .await;
        self.demonitor(&reply_as, true);
        match reply {
            Some(m) => match m.as_tuple_n(3) {
                Some([_, _, reply]) => Ok(reply.clone()),
                // io:request/2 with a dead group leader is {error, terminated}, which
                // io's functions raise as `terminated`.
                _ => Err(Exception::bare(atom("terminated"))),
            },
            None => Err(Exception::bare(atom("timeout"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::{int, list};

    #[test]
    fn formats_like_io_lib() {
        assert_eq!(
            format_erlang("a ~p ~s~n~~", &[int(1), binary("x")]).as_deref(),
            Some("a 1 x\n~")
        );
        let args = [
            atom("rusty"),
            binary("é"),
            int(255),
            int(-10),
            list(vec![int(1)]),
            atom("ignored"),
        ];
        assert_eq!(
            format_erlang("~p ~ts ~.16B ~b ~10.3tp ~i.", &args).as_deref(),
            Some("rusty é FF -10 [1] .")
        );
        // `~w` prints no text; `~tp` Unicode text, as OTP 29's io_lib prints them.
        let text = [binary("abc"), binary("ü"), binary("abc"), binary("ü")];
        assert_eq!(
            format_erlang("~w ~w ~p ~tp", &text).as_deref(),
            Some("<<97,98,99>> <<195,188>> <<\"abc\">> <<\"ü\"/utf8>>")
        );
        let codes = [
            list(vec![int(97)]),
            list(vec![int(0x3b1)]),
            list(vec![int(0x3b1)]),
        ];
        assert_eq!(
            format_erlang("~w ~p ~tp", &codes).as_deref(),
            Some("[97] [945] [945]")
        );
        let text = [binary("α"), binary("aé"), binary("α"), list(vec![int(252)])];
        assert_eq!(
            format_erlang("~tp ~tp ~p ~tp", &text).as_deref(),
            Some("<<206,177>> <<\"aé\"/utf8>> <<\"Î±\">> \"ü\"")
        );
        assert_eq!(
            format_erlang(
                "~f ~.2f ~s ~e ~g ~g ~.3e",
                &[float(1.5), float(2.0), atom("a"), float(1.5), float(1.5)]
                    .into_iter()
                    .chain([float(1.0e7), float(-0.00123)])
                    .collect::<Vec<_>>()
            )
            .as_deref(),
            Some("1.500000 2.00 a 1.50000e+0 1.50000 1.00000e+7 -1.23e-3")
        );
        // Fields, precision and padding, as OTP 25's io_lib:format/2 writes them.
        let ab = || binary("ab");
        for (fmt, args, written) in [
            ("~5w|", vec![int(1)], "    1|"),
            ("~-6w|", vec![atom("ab")], "ab    |"),
            ("~5s|", vec![ab()], "   ab|"),
            ("~-5s|", vec![ab()], "ab   |"),
            ("~3c|", vec![int('x' as i64)], "xxx|"),
            ("~10c|", vec![int('a' as i64)], "aaaaaaaaaa|"),
            ("~10.3f|", vec![float(4.56789)], "     4.568|"),
            ("~*.*f|", vec![int(8), int(2), float(1.0)], "    1.00|"),
            ("~8.2.0B|", vec![int(5)], "00000101|"),
            ("~.16#|", vec![int(255)], "16#FF|"),
            ("~6.16+|", vec![int(255)], " 16#ff|"),
            ("~x|", vec![int(255), binary("0x")], "0x255|"),
            ("~.16x|", vec![int(255), binary("0x")], "0xff|"),
            ("~.16X|", vec![int(255), binary("0x")], "0xFF|"),
            ("~.3s|", vec![binary("abcdef")], "abc|"),
            ("~3s|", vec![binary("abcdef")], "abc|"),
            ("~-10.5s|", vec![binary("abcdefgh")], "abcde     |"),
            ("~3w|", vec![int(12345)], "***|"),
            ("~.5w|", vec![int(12345678)], "*****|"),
            ("~5.1.xw|", vec![int(1)], "xxxx1|"),
            ("~4.1f|", vec![float(123.456)], "****|"),
            ("~2b|", vec![int(123)], "**|"),
            ("~.2b|", vec![int(5)], "101|"),
            ("~10.3e|", vec![float(1.5)], "   1.50e+0|"),
            ("~5.1f|", vec![float(2.25)], "  2.3|"),
            ("~.1f|", vec![float(0.05)], "0.1|"),
            ("~.2f|", vec![float(1.005)], "1.00|"),
            ("~.1f|", vec![float(-2.25)], "-2.3|"),
            ("~f|", vec![float(-2.5e-7)], "-0.000000|"),
            ("~.1f|", vec![float(-0.04)], "-0.0|"),
            ("~.2f|", vec![float(99.996)], "100.00|"),
        ] {
            assert_eq!(format_erlang(fmt, &args).as_deref(), Some(written), "{fmt}");
        }
        // Where io_lib:format/2 raises badarg.
        for (fmt, args) in [
            ("~-8p|", vec![atom("ok")]),
            ("~.0f", vec![float(9.5)]),
            ("~8.3.*s|", vec![binary("ab")]),
            ("~bad", vec![]),
            ("~p", vec![]),
            ("~p", vec![int(1), int(2)]),
            ("~c", vec![atom("x")]),
            ("~s", vec![int(1)]),
            ("~b", vec![atom("x")]),
            ("~f", vec![int(1)]),
            ("tilde at the end ~", vec![]),
        ] {
            assert_eq!(format_erlang(fmt, &args), None, "{fmt}");
        }
    }

    fn float(value: f64) -> Term {
        Term::Float(crate::term::Float { value })
    }

    #[test]
    fn unknown_requests_get_error_request() {
        let opts = &mut Opts::default();
        assert_eq!(io_request(&atom("x"), opts), error_request());
        assert!(io_request(
            &tuple(vec![atom("put_chars"), atom("unicode"), list(vec![])]),
            opts
        )
        .is_atom("ok"));
    }

    #[test]
    fn options_are_kept_as_user_keeps_them() {
        let opts = &mut Opts::default();
        let getopts = atom("getopts");
        let setopts = |o: Term| tuple(vec![atom("setopts"), list(vec![o])]);
        let both = |binary: bool, encoding: &str| {
            list(vec![
                tuple(vec![atom("binary"), crate::term::boolean(binary)]),
                tuple(vec![atom("encoding"), atom(encoding)]),
            ])
        };
        assert_eq!(io_request(&getopts, opts), both(true, "unicode"));
        assert!(io_request(&setopts(atom("list")), opts).is_atom("ok"));
        let latin1 = tuple(vec![atom("encoding"), atom("latin1")]);
        assert!(io_request(&setopts(latin1), opts).is_atom("ok"));
        assert_eq!(io_request(&getopts, opts), both(false, "latin1"));
        let unknown = io_request(&setopts(atom("echo_everything")), opts);
        assert_eq!(unknown, tuple(vec![atom("error"), atom("enotsup")]));
        assert_eq!(io_request(&getopts, opts), both(false, "latin1"));
    }

    #[test]
    fn reading_finds_end_of_input() {
        let opts = &mut Opts::default();
        let prompt = charlist("p> ");
        let get_line = tuple(vec![atom("get_line"), atom("unicode"), prompt.clone()]);
        assert!(io_request(&get_line, opts).is_atom("eof"));
        // io:scan_erl_exprs/2: erl_scan:tokens/3 at end of input.
        let scan = tuple(vec![
            atom("get_until"),
            atom("unicode"),
            prompt,
            atom("erl_scan"),
            atom("tokens"),
            list(vec![int(1)]),
        ]);
        assert_eq!(io_request(&scan, opts), tuple(vec![atom("eof"), int(1)]));
    }
}
