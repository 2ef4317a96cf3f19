# Test driver for BEAM nodes started by tests/support/mod.rs (not part of the
# Chat app). It turns a node into a scriptable iex-like session:
#
# * stdin carries one request per line: `<id> <expression as base16>`
#   (base16 so that expressions may hold newlines or any other bytes);
# * the expressions are evaluated one after the other in ONE long-lived
#   evaluator process (bindings, imports, aliases, the mailbox and process
#   flags persist between evaluations, as in iex), whose group leader is the
#   node's standard `:user` process, so `IO.puts` output lands on stdout like
#   in an iex console;
# * each result is written to stdout as one line
#   `<<cnode-driver:TOKEN:result:<id>:ok|error:<base16 text>>>`, where the
#   text is `inspect(value, limit: :infinity, printable_limit: :infinity)` or
#   the formatted exception; TOKEN comes from $CNODE_DRIVER_TOKEN so nothing
#   else the node prints can be taken for a marker;
# * `<<cnode-driver:TOKEN:ready>>` is written once the driver is ready;
# * end of stdin halts the node (once the requests already read are done), so
#   nodes do not outlive their test process.
#
# If the evaluator dies (e.g. it is linked to a process that crashed and does
# not trap exits), the pending evaluation fails with `** (EXIT ...)` and a
# fresh evaluator (new bindings, empty mailbox) takes over, as in iex.

defmodule CnodeTestDriver.Helpers do
  @moduledoc false

  @doc "Removes all messages from the caller's mailbox and returns them (oldest first)."
  def flush, do: flush([])

  defp flush(acc) do
    receive do
      msg -> flush([msg | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  @doc "Waits up to `timeout` ms for a message and returns it, or `:timeout`."
  def next_message(timeout \\ 5000) do
    receive do
      msg -> msg
    after
      timeout -> :timeout
    end
  end
end

defmodule CnodeTestDriver do
  @moduledoc false

  def main do
    token = System.fetch_env!("CNODE_DRIVER_TOKEN")
    user = Process.whereis(:user)
    Process.group_leader(self(), user)
    Process.flag(:trap_exit, true)
    me = self()
    reader = spawn_link(fn -> read_stdin(me) end)
    marker(token, "ready")
    loop(%{token: token, reader: reader, evaluator: start_evaluator(), busy: nil, queue: :queue.new(), eof: false})
  end

  defp marker(token, body), do: IO.write(:user, "<<cnode-driver:#{token}:#{body}>>\n")

  defp read_stdin(parent) do
    case IO.binread(:user, :line) do
      data when is_binary(data) ->
        send(parent, {:stdin, data})
        read_stdin(parent)

      _eof_or_error ->
        send(parent, :stdin_eof)
    end
  end

  defp loop(state) do
    receive do
      {:stdin, line} ->
        state =
          case String.split(String.trim(line), " ", parts: 2) do
            [id, hex] -> %{state | queue: :queue.in({id, hex}, state.queue)}
            _ -> state
          end

        loop(dispatch(state))

      {:done, id, kind, text} ->
        marker(state.token, "result:#{id}:#{kind}:#{Base.encode16(text)}")
        loop(dispatch(%{state | busy: nil}))

      {:DOWN, _ref, :process, pid, reason} when pid == elem(state.evaluator, 0) ->
        if state.busy do
          text = "** (EXIT from evaluator #{inspect(pid)}) #{inspect(reason)}"
          marker(state.token, "result:#{state.busy}:error:#{Base.encode16(text)}")
        end

        loop(dispatch(%{state | busy: nil, evaluator: start_evaluator()}))

      :stdin_eof ->
        loop(dispatch(%{state | eof: true}))

      {:EXIT, pid, _reason} when pid == state.reader ->
        loop(dispatch(%{state | eof: true}))

      _other ->
        loop(state)
    end
  end

  defp dispatch(%{busy: nil} = state) do
    case :queue.out(state.queue) do
      {{:value, {id, hex}}, queue} ->
        {pid, _ref} = state.evaluator

        case Base.decode16(hex, case: :mixed) do
          {:ok, code} ->
            send(pid, {:"$cnode_driver_eval", self(), id, code})
            %{state | busy: id, queue: queue}

          :error ->
            marker(state.token, "result:#{id}:error:#{Base.encode16("bad request")}")
            dispatch(%{state | queue: queue})
        end

      {:empty, _} ->
        if state.eof, do: System.halt(0)
        state
    end
  end

  defp dispatch(state), do: state

  defp start_evaluator do
    spawn_monitor(fn ->
      Process.group_leader(self(), Process.whereis(:user))
      env = Code.env_for_eval(file: "cnode_eval")
      setup = quote do: import(CnodeTestDriver.Helpers, warn: false)
      {_, binding, env} = Code.eval_quoted_with_env(setup, [], env)
      evaluate(binding, env, 1)
    end)
  end

  defp evaluate(binding, env, line) do
    receive do
      {:"$cnode_driver_eval", driver, id, code} ->
        {kind, text, binding, env} =
          try do
            quoted = Code.string_to_quoted!(code, file: "cnode_eval", line: line)
            {value, binding, env} = Code.eval_quoted_with_env(quoted, binding, env)
            {"ok", inspect(value, limit: :infinity, printable_limit: :infinity), binding, env}
          catch
            kind, reason -> {"error", Exception.format(kind, reason, __STACKTRACE__), binding, env}
          end

        send(driver, {:done, id, kind, text})
        evaluate(binding, env, line + 1)
    end
  end
end

CnodeTestDriver.main()
