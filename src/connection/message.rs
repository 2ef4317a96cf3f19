//! Control messages between nodes, as [`codec`](super::codec) reads and writes them.
//!
//! The kinds and fields of `erl_dist::message::Message` (the names of the distribution
//! protocol's documentation), over this crate's own [`Term`]: erl_dist's are built of
//! `eetf`'s terms. The trace-token forms are read as the plain ones (their tokens
//! dropped, as a node that does not trace does) and never written.
//!
//! Reference: <https://www.erlang.org/doc/apps/erts/erl_dist_protocol.html#protocol-between-connected-nodes>

use crate::term::{Atom, FixInteger, List, Pid, Reference, Term, Tuple};

/// [`Pid`] or [`Atom`]: a process by pid or by registered name.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum PidOrAtom {
    Pid(Pid),
    Atom(Atom),
}

impl From<PidOrAtom> for Term {
    fn from(v: PidOrAtom) -> Self {
        match v {
            PidOrAtom::Pid(v) => v.into(),
            PidOrAtom::Atom(v) => v.into(),
        }
    }
}

/// `{Module, Function, Arity}`.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct Mfa {
    pub module: Atom,
    pub function: Atom,
    pub arity: FixInteger,
}

impl From<Mfa> for Term {
    fn from(v: Mfa) -> Self {
        Tuple::from(vec![v.module.into(), v.function.into(), v.arity.into()]).into()
    }
}

/// This signal is sent by `from_pid` in order to create a link between `from_pid` and `to_pid`.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct Link {
    pub from_pid: Pid,
    pub to_pid: Pid,
}

/// This signal is used to send a message to `to_pid`.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct Send {
    pub to_pid: Pid,
    pub message: Term,
}

/// This signal is sent when a link has been broken. Written as `PAYLOAD_EXIT` (the
/// reason after the control tuple) to a peer with `EXIT_PAYLOAD`, as `EXIT` otherwise;
/// so are [`Exit2`] and [`MonitorPExit`].
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct Exit {
    pub from_pid: Pid,
    pub to_pid: Pid,
    pub reason: Term,
}

/// **DEPRECATED** This signal is sent by `from_pid` in order to remove a link between `from_pid` and `to_pid`.
///
/// This signal has been deprecated and will not be supported in OTP 26.
/// For more information see the documentation of the [new link protocol](https://www.erlang.org/doc/apps/erts/erl_dist_protocol.html#new_link_protocol).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct Unlink {
    pub from_pid: Pid,
    pub to_pid: Pid,
}

/// Node link.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeLink;

/// This signal is used to send a message to a named process.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct RegSend {
    pub from_pid: Pid,
    pub to_name: Atom,
    pub message: Term,
}

/// Group leader.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct GroupLeader {
    pub from_pid: Pid,
    pub to_pid: Pid,
}

/// This signal is sent by a call to the `erlang:exit/2` bif.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct Exit2 {
    pub from_pid: Pid,
    pub to_pid: Pid,
    pub reason: Term,
}

/// `from_pid` = monitoring process and `to_proc` = monitored process pid or name (atom).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct MonitorP {
    pub from_pid: Pid,
    pub to_proc: PidOrAtom,
    pub reference: Reference,
}

/// `from_pid` = monitoring process and `to_proc` = monitored process pid or name (atom).
///
/// We include `from_pid` just in case we want to trace this.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct DemonitorP {
    pub from_pid: Pid,
    pub to_proc: PidOrAtom,
    pub reference: Reference,
}

/// `from_proc` = monitored process pid or name (atom), `to_pid` = monitoring process, and `reason` = exit reason for the monitored process.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct MonitorPExit {
    pub from_proc: PidOrAtom,
    pub to_pid: Pid,
    pub reference: Reference,
    pub reason: Term,
}

/// This control message replaces the [`Send`] control message and will be sent when the distribution flag `SEND_SENDER` has been negotiated in the connection setup handshake.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct SendSender {
    pub from_pid: Pid,
    pub to_pid: Pid,
    pub message: Term,
}

/// This signal is sent by the `spawn_request()` BIF.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct SpawnRequest {
    pub req_id: Reference,
    pub from_pid: Pid,
    pub group_leader: Pid,
    pub mfa: Mfa,
    pub opt_list: List,
    pub arg_list: List,
}

/// This signal is sent as a reply to a process previously sending a [`SpawnRequest`] signal.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct SpawnReply {
    pub req_id: Reference,
    pub to_pid: Pid,
    pub flags: FixInteger,
    pub result: PidOrAtom,
}

/// This signal is sent by `from_pid` in order to remove a link between `from_pid` and `to_pid`.
///
/// This unlink signal replaces the [`Unlink`] signal.
/// This signal is only passed when the [new link protocol](https://www.erlang.org/doc/apps/erts/erl_dist_protocol.html#new_link_protocol) has been negotiated using the `UNLINK_ID` distribution flag.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct UnlinkId {
    pub id: Term,
    pub from_pid: Pid,
    pub to_pid: Pid,
}

/// An unlink acknowledgement signal.
///
/// This signal is sent as an acknowledgement of the reception of an [`UnlinkId`] signal.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct UnlinkIdAck {
    pub id: Term,
    pub from_pid: Pid,
    pub to_pid: Pid,
}

/// This control message is used when sending the message Message to the process identified by the process alias `alias`.
///
/// Nodes that can handle this control message sets the distribution flag `ALIAS` in the connection setup handshake.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct AliasSend {
    pub from_pid: Pid,
    pub alias: Reference,
    pub message: Term,
}

/// An exit signal to the process identified by the alias `alias` (`exit/3`, OTP 28):
/// `ALTACT_SIG_SEND` with the `ALIAS` and `EXIT` bits (and `PRIO` with the `priority`
/// option), the reason as its payload. Only a peer with `ALTACT_SIG` can take it.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct AliasExit {
    pub from_pid: Pid,
    pub alias: Reference,
    pub reason: Term,
    pub priority: bool,
}

/// Message.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Message {
    Link(Link),
    Send(Send),
    Exit(Exit),
    Unlink(Unlink), // deprecated
    NodeLink(NodeLink),
    RegSend(RegSend),
    GroupLeader(GroupLeader),
    Exit2(Exit2),
    MonitorP(MonitorP),
    DemonitorP(DemonitorP),
    MonitorPExit(MonitorPExit),
    SendSender(SendSender),
    SpawnRequest(SpawnRequest),
    SpawnReply(SpawnReply),
    UnlinkId(UnlinkId),
    UnlinkIdAck(UnlinkIdAck),
    AliasSend(AliasSend),
    AliasExit(AliasExit),
}

impl Message {
    /// The message a process sends (`SEND`, `REG_SEND`, `SEND_SENDER`, `ALIAS_SEND`).
    pub(crate) fn sent_mut(&mut self) -> Option<&mut Term> {
        match self {
            Self::Send(Send { message, .. })
            | Self::RegSend(RegSend { message, .. })
            | Self::SendSender(SendSender { message, .. })
            | Self::AliasSend(AliasSend { message, .. }) => Some(message),
            _ => None,
        }
    }

    /// Makes a [`Link`] message.
    pub fn link(from_pid: Pid, to_pid: Pid) -> Self {
        Self::Link(Link { from_pid, to_pid })
    }

    /// Makes a [`RegSend`] message.
    pub fn reg_send(from_pid: Pid, to_name: Atom, message: Term) -> Self {
        Self::RegSend(RegSend {
            from_pid,
            to_name,
            message,
        })
    }

    /// Makes as [`MonitorP`] message.
    pub fn monitor_p(from_pid: Pid, to_proc: PidOrAtom, reference: Reference) -> Self {
        Self::MonitorP(MonitorP {
            from_pid,
            to_proc,
            reference,
        })
    }

    /// Makes as [`DemonitorP`] message.
    pub fn demonitor_p(from_pid: Pid, to_proc: PidOrAtom, reference: Reference) -> Self {
        Self::DemonitorP(DemonitorP {
            from_pid,
            to_proc,
            reference,
        })
    }

    /// Makes a [`SendSender`] message.
    pub fn send_sender(from_pid: Pid, to_pid: Pid, message: Term) -> Self {
        Self::SendSender(SendSender {
            from_pid,
            to_pid,
            message,
        })
    }

    /// Makes an [`Exit`] message.
    pub fn exit(from_pid: Pid, to_pid: Pid, reason: Term) -> Self {
        Self::Exit(Exit {
            from_pid,
            to_pid,
            reason,
        })
    }

    /// Makes an [`Exit2`] message.
    pub fn exit2(from_pid: Pid, to_pid: Pid, reason: Term) -> Self {
        Self::Exit2(Exit2 {
            from_pid,
            to_pid,
            reason,
        })
    }

    /// Makes a [`MonitorPExit`] message.
    pub fn monitor_p_exit(
        from_proc: PidOrAtom,
        to_pid: Pid,
        reference: Reference,
        reason: Term,
    ) -> Self {
        Self::MonitorPExit(MonitorPExit {
            from_proc,
            to_pid,
            reference,
            reason,
        })
    }

    /// Makes a [`SpawnRequest`] message.
    pub fn spawn_request(
        req_id: Reference,
        from_pid: Pid,
        group_leader: Pid,
        mfa: Mfa,
        opt_list: List,
        arg_list: List,
    ) -> Self {
        Self::SpawnRequest(SpawnRequest {
            req_id,
            from_pid,
            group_leader,
            mfa,
            opt_list,
            arg_list,
        })
    }

    /// Makes a [`SpawnReply`] message.
    pub fn spawn_reply(
        req_id: Reference,
        to_pid: Pid,
        flags: FixInteger,
        result: PidOrAtom,
    ) -> Self {
        Self::SpawnReply(SpawnReply {
            req_id,
            to_pid,
            flags,
            result,
        })
    }

    /// Makes a [`UnlinkId`] message.
    pub fn unlink_id(id: Term, from_pid: Pid, to_pid: Pid) -> Self {
        Self::UnlinkId(UnlinkId {
            id,
            from_pid,
            to_pid,
        })
    }

    /// Makes a [`UnlinkIdAck`] message.
    pub fn unlink_id_ack(id: Term, from_pid: Pid, to_pid: Pid) -> Self {
        Self::UnlinkIdAck(UnlinkIdAck {
            id,
            from_pid,
            to_pid,
        })
    }

    /// Makes a [`AliasSend`] message.
    pub fn alias_send(from_pid: Pid, alias: Reference, message: Term) -> Self {
        Self::AliasSend(AliasSend {
            from_pid,
            alias,
            message,
        })
    }
}
