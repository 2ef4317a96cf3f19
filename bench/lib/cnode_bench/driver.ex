defmodule CnodeBench.Driver do
  @moduledoc """
  The BEAM caller of `scripts/bench`: one node that drives every workload against
  both servers (the Rust Moebi and the BEAM Moebi, `CnodeBench.Server`), interleaved,
  for several rounds, and runs the Rust bench client (`benches/dist.rs`) for the
  Rust-caller half of the pairs. It measures each server's CPU time (`/proc/PID/stat`)
  and RSS (`/proc/PID/status`) around every run, and writes the markdown report.

      elixir --sname bench_caller_X@localhost --cookie C -pa ... \\
        -e "CnodeBench.Driver.main(System.argv())" -- --beam NODE --rust NODE \\
        --rust-ospid PID --client PATH --cookie C --rounds R [--quick] --out FILE

  Under TLS distribution (this node and both servers started with `-proto_dist
  inet_tls`), `--tls DIR` names the folder of `cert.pem`, `key.pem` and `ca.pem`, which
  the Rust client gets too; the report is then the TLS one, with the pending-handshake
  figures of `--pending-results FILE` (repeated). `--pending silent|hello` measures only
  those (on servers started for it alone, so no earlier run's freed memory is reused)
  and writes them to `--out` as an Erlang term.

  Exit status: 0 when every workload ran, 1 when one failed, 2 (with
  `--require-targets`) when all ran but a target was missed.
  """

  alias CnodeBench.{Report, Util}

  @inflight 64
  @small {:ping, 1}
  @list Enum.to_list(1001..1200)
  @op_timeout 10_000
  @run_timeout 300_000

  # {key, kind, in flight, n (full), n (quick)}: the BEAM caller's workloads (1-4).
  @workloads [
    {:task_seq, :task, 1, 4_000, 400},
    {:task_64, :task, @inflight, 12_800, 1_280},
    {:nested_seq, :nested, 1, 2_000, 200},
    {:nested_64, :nested, @inflight, 6_400, 640},
    {:call_small_seq, :call_small, 1, 10_000, 1_000},
    {:call_small_64, :call_small, @inflight, 64_000, 6_400},
    {:call_list_seq, :call_list, 1, 10_000, 1_000},
    {:call_list_64, :call_list, @inflight, 32_000, 3_200},
    {:send, :send, 1, 1_000_000, 100_000}
  ]

  # {key, kind, n (full), n (quick)}: the 64-in-flight workloads again with the caller on
  # one core and the server on another (`taskset`), each BEAM on one scheduler: the
  # caller's CPU per operation is then its own work. Sharing the cores, it also holds
  # the time its schedulers busy-wait on a core the server leaves free, and the server's
  # threads preempting it as they wake; neither says what the server's frames cost it.
  @pinned_workloads [
    {:task_64_pinned, :task, 12_800, 1_280},
    {:nested_64_pinned, :nested, 6_400, 640},
    {:call_small_64_pinned, :call_small, 64_000, 6_400},
    {:call_list_64_pinned, :call_list, 32_000, 3_200}
  ]

  # {key, kind, n (full), n (quick)}: the sequential seed workloads again with the caller
  # and the server sharing one core (`taskset`), each BEAM on one scheduler. A sequential
  # round trip between two cores waits, on each side, for the kernel to wake a thread on
  # a core that went idle while the other side worked (on a virtual machine, tens of µs
  # each); on one core each side hands the core to the other. What is left is the two
  # sides' own work: the server's share of a round trip.
  @one_core_workloads [
    {:task_seq_one_core, :task, 4_000, 400},
    {:nested_seq_one_core, :nested, 2_000, 200}
  ]

  # The Rust caller's (benches/dist.rs client) workloads: the same keys.
  @client_workloads [
    {:task_seq, "task", 1, 4_000, 400},
    {:task_64, "task", @inflight, 12_800, 1_280},
    {:call_small_seq, "call_small", 1, 10_000, 1_000},
    {:call_small_64, "call_small", @inflight, 64_000, 6_400},
    {:call_list_seq, "call_list", 1, 10_000, 1_000},
    {:call_list_64, "call_list", @inflight, 32_000, 3_200},
    {:send, "send", 1, 1_000_000, 100_000}
  ]

  def main(argv) do
    Util.logger_to_stderr()
    Util.halt_with_parent()

    {opts, _, invalid} =
      OptionParser.parse(argv,
        strict: [
          beam: :string,
          rust: :string,
          rust_ospid: :integer,
          client: :string,
          cookie: :string,
          rounds: :integer,
          quick: :boolean,
          out: :string,
          peers: :integer,
          require_targets: :boolean,
          note: :string,
          tls: :string,
          pending: :string,
          pending_results: :keep
        ]
      )

    if invalid != [], do: fail("bad arguments: #{inspect(invalid)}")

    pending_results = Keyword.get_values(opts, :pending_results)
    opts = opts |> Map.new() |> Map.put(:pending_results, pending_results)
    {:ok, _} = Application.ensure_all_started(:chat)

    code =
      case opts do
        %{pending: variant} when variant in ["silent", "hello"] -> run_pending(opts, variant)
        %{pending: other} -> fail("--pending #{other}: silent or hello")
        _ -> run(opts)
      end

    System.halt(code)
  end

  # Pending TLS handshakes: sockets to each server that never finish one, `count` at once
  # (fewer than the Rust node's max_pending_handshakes, 256, at which it drops the oldest),
  # measured within net_setuptime (7 s), after which both servers drop them. Memory from
  # the first batch (on a fresh server); CPU time over all `batches`, sides alternating,
  # for a resolution finer than the clock tick (10 ms).
  defp run_pending(opts, variant) do
    quick = Map.get(opts, :quick, false)
    {count, batches} = if quick, do: {50, 1}, else: {200, 5}
    servers = connect_servers(opts)

    runs =
      Enum.reduce(1..batches, %{beam: [], rust: []}, fn batch, acc ->
        order = if rem(batch, 2) == 1, do: [:beam, :rust], else: [:rust, :beam]

        Enum.reduce(order, acc, fn side, acc ->
          r = pending_batch(opts, servers[side], count, variant == "hello")
          progress("#{count} pending TLS handshakes (#{variant}) on #{side}: #{inspect(r)}")
          Map.update!(acc, side, &(&1 ++ [r]))
        end)
      end)

    results = Map.new(runs, fn {side, rs} -> {side, pending_summary(rs)} end)
    progress("pending TLS handshakes (#{variant}): #{inspect(results)}")
    File.mkdir_p!(Path.dirname(opts.out))
    File.write!(opts.out, :erlang.term_to_binary({String.to_atom(variant), count, results}))
    if Enum.any?(Map.values(results), &match?({:error, _}, &1)), do: 1, else: 0
  end

  # Per socket the server took (accepted, as opposed to left in its listen queue):
  # memory from the first batch, CPU time over all.
  defp pending_summary(runs) do
    case Enum.find(runs, &match?({:error, _}, &1)) do
      {:error, _} = e ->
        e

      nil ->
        [first | _] = runs
        taken = runs |> Enum.map(& &1.taken) |> Enum.sum()
        cpu = runs |> Enum.map(& &1.cpu_ms) |> Enum.sum()

        %{
          batches: length(runs),
          taken: first.taken,
          answered: first.answered,
          per_kib: (first.rss_with - first.rss_before) / first.taken,
          cpu_ms_per: cpu / taken
        }
    end
  end

  # Both servers answering, and the BEAM one's OS pid.
  defp connect_servers(opts) do
    beam = String.to_atom(opts.beam)
    rust = String.to_atom(opts.rust)
    for node <- [beam, rust], do: wait_for(node)
    beam_ospid = :erpc.call(beam, :os, :getpid, []) |> List.to_integer()

    servers = %{
      beam: %{node: beam, ospid: beam_ospid},
      rust: %{node: rust, ospid: opts.rust_ospid}
    }

    # A moment for start-up work (code loading, first connections) to settle.
    Process.sleep(1000)
    servers
  end

  defp run(opts) do
    quick = Map.get(opts, :quick, false)
    rounds = Map.get(opts, :rounds, if(quick, do: 1, else: 7))
    peers = Map.get(opts, :peers, if(quick, do: 100, else: 1000))
    load_before = loadavg()
    servers = connect_servers(opts)
    idle = Map.new(servers, fn {side, s} -> {side, Util.rss_kib(s.ospid)} end)
    progress("idle RSS: BEAM #{idle.beam} KiB, Rust #{idle.rust} KiB")

    peer_results =
      Map.new([:beam, :rust], fn side ->
        r = peers(opts, servers[side], peers)
        progress("#{peers} peers on #{side}: #{inspect(r)}")
        {side, r}
      end)

    cores = Util.cores(self_ospid())

    if length(cores) < 2,
      do: progress("one core only (#{inspect(cores)}): no runs on a core each")

    # Warm-up: every workload, small, on both servers (JIT, atom caches, allocators).
    for {key, kind, inflight, _n, nq} <- @workloads, side <- [:beam, :rust] do
      beam_caller_run(key, kind, inflight, max(div(nq, 10), inflight), servers[side])
    end

    # The runs on given cores: the 64-in-flight workloads on a core each (given two),
    # the sequential seed workloads with caller and server on the same core.
    [core | _] = cores
    size = fn n, nq -> if quick, do: nq, else: n end

    a_core_each = if length(cores) < 2, do: [], else: @pinned_workloads

    pinned_runs =
      Enum.map(a_core_each, fn {key, kind, n, nq} ->
        {key, kind, @inflight, size.(n, nq), cores}
      end) ++
        Enum.map(@one_core_workloads, fn {key, kind, n, nq} ->
          {key, kind, 1, size.(n, nq), [core, core]}
        end)

    results =
      Enum.reduce(1..rounds, %{}, fn round, acc ->
        order = if rem(round, 2) == 1, do: [:beam, :rust], else: [:rust, :beam]
        progress("round #{round}/#{rounds} (#{Enum.join(order, " first, then ")})")

        acc =
          Enum.reduce(@workloads, acc, fn {key, kind, inflight, n, nq}, acc ->
            Enum.reduce(order, acc, fn side, acc ->
              r = beam_caller_run(key, kind, inflight, if(quick, do: nq, else: n), servers[side])
              recorded(acc, {key, :beam, side}, round, r)
            end)
          end)

        acc =
          Enum.reduce(pinned_runs, acc, fn {key, kind, inflight, n, on}, acc ->
            Enum.reduce(order, acc, fn side, acc ->
              r =
                pinned(on, side, servers[side], fn ->
                  beam_caller_run(key, kind, inflight, n, servers[side])
                end)

              recorded(acc, {key, :beam, side}, round, r)
            end)
          end)

        Enum.reduce(@client_workloads, acc, fn {key, wl, inflight, n, nq}, acc ->
          Enum.reduce(order, acc, fn side, acc ->
            r = rust_caller_run(opts, wl, inflight, if(quick, do: nq, else: n), servers[side])
            recorded(acc, {key, :rust, side}, round, r)
          end)
        end)
      end)

    latency =
      if Map.has_key?(opts, :tls), do: nil, else: latency_rounds(opts, servers, rounds, quick)

    # Read once the servers have been idle a while: what they hold, not what their
    # allocators keep for the next large message (the Rust node gives that back after
    # 1-2 s unused, `cnode::reuse_freed_memory`).
    Process.sleep(3_000)
    after_rss = Map.new(servers, fn {side, s} -> {side, Util.rss_kib(s.ospid)} end)

    report =
      Report.build(%{
        results: results,
        idle: idle,
        after: after_rss,
        peers: peer_results,
        peer_count: peers,
        rounds: rounds,
        quick: quick,
        load_before: load_before,
        load_after: loadavg(),
        note: Map.get(opts, :note, ""),
        workloads: @workloads,
        pinned: for({key, _, _, _} <- @pinned_workloads, do: key),
        one_core: for({key, _, _, _} <- @one_core_workloads, do: key),
        tls: Map.has_key?(opts, :tls),
        pending: read_pending(opts.pending_results)
      })

    File.mkdir_p!(Path.dirname(opts.out))
    File.write!(opts.out, report.markdown <> latency_table(latency))

    cond do
      report.errors > 0 -> 1
      Map.get(opts, :require_targets, false) and report.missed > 0 -> 2
      true -> 0
    end
  end

  defp progress(text), do: IO.puts(:stderr, "[bench] " <> text)

  # The `--pending` runs' results: %{silent: {count, %{beam: r, rust: r}}, hello: ...}.
  defp read_pending(files) do
    Map.new(files, fn file ->
      {variant, count, results} = file |> File.read!() |> :erlang.binary_to_term()
      {variant, {count, results}}
    end)
  end

  # The Rust client's TLS options under `--tls DIR`: the servers' own files.
  defp tls_args(%{tls: dir}) do
    ["--tls-cert", Path.join(dir, "cert.pem"), "--tls-key", Path.join(dir, "key.pem")] ++
      ["--tls-ca", Path.join(dir, "ca.pem")]
  end

  defp tls_args(_opts), do: []

  # One run's result `r`, logged and added to the results of `{key, caller, server}`.
  defp recorded(acc, {key, caller, server} = k, round, r) do
    r = if is_map(r), do: Map.put(r, :round, round), else: r
    log_run(caller, server, key, r)
    Map.update(acc, k, [r], &[r | &1])
  end

  defp log_run(caller, server, key, {:error, why}),
    do: progress("  #{caller}->#{server} #{key}: FAILED #{why}")

  defp log_run(caller, server, key, r),
    do:
      progress(
        "  #{caller}->#{server} #{key}: #{round(r.rate)} ops/s, CPU per op: server #{Float.round(r.cpu_per_1k, 1)} us, caller #{Float.round(r.caller_cpu_per_1k, 1)} us#{active_text(r)}; server RSS max #{r.rss_max} KiB"
      )

  defp active_text(%{caller_active_per_1k: a}), do: " (active #{Float.round(a, 1)} us)"
  defp active_text(_), do: ""

  defp fail(text) do
    IO.puts(:stderr, "[bench] error: " <> text)
    System.halt(1)
  end

  defp wait_for(node, tries \\ 300) do
    cond do
      Node.ping(node) == :pong -> :ok
      tries == 0 -> fail("#{node} does not answer")
      true -> Process.sleep(100) && wait_for(node, tries - 1)
    end
  end

  defp loadavg do
    case File.read("/proc/loadavg") do
      {:ok, s} -> s |> String.split(" ") |> Enum.take(3) |> Enum.join(" ")
      _ -> "?"
    end
  end

  # ---- measuring ---------------------------------------------------------------

  # Runs `fun` (returning {:ok, ops, microseconds}, {:ok, ops, microseconds, caller_cpu_ms}
  # or {:error, why}) while sampling the server's RSS, and measures the server's CPU time
  # around it, and the caller's (this node's, unless `fun` reports it).
  defp measured(server, fun) do
    rss_start = Util.rss_kib(server.ospid)
    sampler = spawn_link(fn -> sample_rss(server.ospid, 0) end)
    me = self_ospid()
    cpu0 = Util.cpu_ms(server.ospid)
    own0 = Util.cpu_ms(me)
    active0 = :erlang.statistics(:scheduler_wall_time)
    result = fun.()
    active1 = :erlang.statistics(:scheduler_wall_time)
    cpu1 = Util.cpu_ms(server.ospid)
    own1 = Util.cpu_ms(me)
    send(sampler, {:stop, self()})

    rss_max =
      receive do
        {:rss_max, kib} -> kib
      after
        5000 -> 0
      end

    result =
      case result do
        {:ok, ops, us} -> {:ok, ops, us, own1 - own0}
        other -> other
      end

    case result do
      {:ok, ops, us, caller_cpu} when ops > 0 and us > 0 ->
        %{
          rate: ops * 1_000_000 / us,
          cpu_per_1k: (cpu1 - cpu0) * 1000 / ops,
          caller_cpu_per_1k: caller_cpu * 1000 / ops,
          rss_max: rss_max,
          rss_growth: max(0, rss_max - rss_start)
        }
        |> Map.merge(caller_active(active0, active1, us, ops))

      {:ok, _, _, _} ->
        {:error, "no operations"}

      {:error, _} = e ->
        e
    end
  end

  # The time this node's schedulers were busy (running processes, ports, garbage
  # collection), per 1,000 operations, when `pinned/4` has turned on
  # `scheduler_wall_time`: the caller's work, without the busy-waiting its CPU time also
  # holds. Each scheduler's active share of its wall time, times the run's length.
  defp caller_active(samples0, samples1, us, ops) when is_list(samples0) and is_list(samples1) do
    before = Map.new(samples0, fn {id, active, total} -> {id, {active, total}} end)

    busy_us =
      Enum.sum(
        for {id, active, total} <- samples1,
            {a0, t0} = Map.get(before, id, {active, total}),
            total > t0 do
          (active - a0) / (total - t0) * us
        end
      )

    %{caller_active_per_1k: busy_us / 1000 * 1000 / ops}
  end

  defp caller_active(_, _, _, _), do: %{}

  defp self_ospid, do: List.to_integer(:os.getpid())

  # Runs `fun` with this node on the first of `cores` and the server on the second (the
  # same core for `@one_core_workloads`), the BEAM nodes on one scheduler each; then
  # puts back the affinities and schedulers.
  defp pinned([mine, theirs | _], side, server, fun) do
    me = self_ospid()
    affinities = for pid <- [me, server.ospid], do: {pid, Util.affinity(pid)}
    Util.set_affinity(me, "#{mine}")
    Util.set_affinity(server.ospid, "#{theirs}")
    online = :erlang.system_flag(:schedulers_online, 1)
    server_online = if side == :beam, do: schedulers_online(server.node, 1)
    :erlang.system_flag(:scheduler_wall_time, true)

    try do
      fun.()
    after
      :erlang.system_flag(:scheduler_wall_time, false)
      :erlang.system_flag(:schedulers_online, online)
      if side == :beam, do: schedulers_online(server.node, server_online)
      for {pid, cpus} <- affinities, do: Util.set_affinity(pid, cpus)
    end
  end

  defp schedulers_online(node, n),
    do: :erpc.call(node, :erlang, :system_flag, [:schedulers_online, n])

  defp sample_rss(ospid, max) do
    max = max(max, Util.rss_kib(ospid))

    receive do
      {:stop, from} -> send(from, {:rss_max, max(max, Util.rss_kib(ospid))})
    after
      20 -> sample_rss(ospid, max)
    end
  end

  # ---- the BEAM caller (this node) ------------------------------------------------

  defp beam_caller_run(_key, :send, _inflight, n, server) do
    measured(server, fn -> timed_send(server.node, n) end)
  end

  defp beam_caller_run(_key, kind, inflight, n, server) do
    target = server.node
    op = op(kind, target)
    measured(server, fn -> timed(n, inflight, op) end)
  end

  defp op(:task, target) do
    fn ->
      :ok =
        Task.Supervisor.async({Chat.TaskSupervisor, target}, Chat, :receive_message, ["hi"])
        |> Task.await(@op_timeout)
    end
  end

  defp op(:nested, target), do: fn -> :ok = Chat.send_message(target, "hi") end

  defp op(:call_small, target) do
    fn -> @small = GenServer.call({:echo, target}, @small, @op_timeout) end
  end

  defp op(:call_list, target) do
    fn -> @list = GenServer.call({:echo, target}, @list, @op_timeout) end
  end

  # `n` operations from `inflight` processes, each doing its share in sequence.
  defp timed(n, inflight, op) do
    per = div(n, inflight)
    t0 = System.monotonic_time(:microsecond)

    workers =
      for _ <- 1..inflight do
        spawn_monitor(fn -> repeat(per, op) end)
      end

    deadline = t0 + @run_timeout * 1000

    outcome =
      Enum.reduce_while(workers, :ok, fn {_pid, ref}, :ok ->
        left = max(0, div(deadline - System.monotonic_time(:microsecond), 1000))

        receive do
          {:DOWN, ^ref, :process, _, :normal} -> {:cont, :ok}
          {:DOWN, ^ref, :process, _, reason} -> {:halt, {:error, inspect(reason, limit: 8)}}
        after
          left -> {:halt, {:error, "timeout"}}
        end
      end)

    elapsed = System.monotonic_time(:microsecond) - t0
    for {pid, _} <- workers, do: Process.exit(pid, :kill)

    case outcome do
      :ok -> {:ok, per * inflight, elapsed}
      e -> e
    end
  end

  defp repeat(0, _op), do: :ok

  defp repeat(k, op) do
    op.()
    repeat(k - 1, op)
  end

  # `n` messages `{:msg, i}` to `{:echo, node}`, then `{self(), :done}`: the echo
  # process answers `:done` once it has taken every message before it.
  defp timed_send(node, n) do
    parent = self()

    {pid, ref} =
      spawn_monitor(fn ->
        dest = {:echo, node}
        t0 = System.monotonic_time(:microsecond)
        send_loop(dest, 0, n)
        send(dest, {self(), :done})

        receive do
          :done -> send(parent, {:sent, self(), System.monotonic_time(:microsecond) - t0})
        after
          @run_timeout -> exit(:timeout)
        end
      end)

    receive do
      {:sent, ^pid, us} ->
        Process.demonitor(ref, [:flush])
        {:ok, n, us}

      {:DOWN, ^ref, :process, _, reason} ->
        {:error, inspect(reason)}
    after
      @run_timeout + 5000 ->
        Process.exit(pid, :kill)
        {:error, "timeout"}
    end
  end

  defp send_loop(_dest, n, n), do: :ok

  defp send_loop(dest, i, n) do
    send(dest, {:msg, i})
    send_loop(dest, i + 1, n)
  end

  # ---- small calls while large messages arrive ---------------------------------------

  @big_bytes 64 * 1024 * 1024

  # Per caller and side, the latencies (µs) of sequential small `GenServer.call`s to
  # `:echo` made while another process of the same caller node sends 64 MB messages to
  # the same server, over the same connection; up to 3 rounds, sides alternating. The
  # callers: this node, and the Rust client (`benches/dist.rs client --workload
  # beside_large`).
  defp latency_rounds(opts, servers, rounds, quick) do
    bigs = if quick, do: 2, else: 8

    empty =
      for caller <- [:beam, :rust], side <- [:beam, :rust], into: %{}, do: {{caller, side}, []}

    Enum.reduce(1..min(rounds, 3), empty, fn round, acc ->
      order = if rem(round, 2) == 1, do: [:beam, :rust], else: [:rust, :beam]

      for caller <- [:beam, :rust], side <- order, reduce: acc do
        acc ->
          result =
            case caller do
              :beam -> calls_under_big_sends(servers[side].node, bigs)
              :rust -> rust_calls_under_big_sends(opts, servers[side].node, bigs)
            end

          case result do
            {:ok, lat} ->
              progress(
                "#{length(lat)} small calls from the #{caller} caller beside #{bigs} x 64 MB " <>
                  "on #{side}: p50 #{percentile(lat, 50)} us, p99 #{percentile(lat, 99)} us"
              )

              Map.update!(acc, {caller, side}, fn
                prev when is_list(prev) -> lat ++ prev
                failed -> failed
              end)

            {:error, why} ->
              progress(
                "small calls from the #{caller} caller beside 64 MB messages on #{side} failed: #{why}"
              )

              Map.put(acc, {caller, side}, {:error, why})
          end
      end
    end)
  end

  defp rust_calls_under_big_sends(opts, node, bigs) do
    case rust_client(opts, node, ["--workload", "beside_large", "--n", "#{bigs}"]) do
      {:ok, ["RESULT", "beside_large", _n, list]} ->
        {:ok, for(v <- String.split(list, ",", trim: true), do: String.to_integer(v))}

      {:ok, ["RESULT", "beside_large", "0"]} ->
        {:ok, []}

      {:ok, fields} ->
        {:error, "the client said #{Enum.join(fields, " ")}"}

      error ->
        error
    end
  end

  defp calls_under_big_sends(node, bigs) do
    parent = self()
    dest = {:echo, node}

    {sender, ref} =
      spawn_monitor(fn ->
        big = :binary.copy(<<7>>, @big_bytes)
        for i <- 1..bigs, do: send(dest, {:big, i, big})
        # The echo answers once it has taken every message before this one.
        send(dest, {self(), :done})

        receive do
          :done -> send(parent, {:bigs_done, self()})
        after
          @run_timeout -> exit(:timeout)
        end
      end)

    lat = call_until_done(node, sender, [])
    Process.demonitor(ref, [:flush])
    lat
  end

  defp call_until_done(node, sender, acc) do
    receive do
      {:bigs_done, ^sender} -> {:ok, acc}
    after
      0 ->
        t0 = System.monotonic_time(:microsecond)

        case catch_exit(fn -> GenServer.call({:echo, node}, @small, @run_timeout) end) do
          @small ->
            call_until_done(node, sender, [System.monotonic_time(:microsecond) - t0 | acc])

          other ->
            {:error, inspect(other, limit: 8)}
        end
    end
  end

  defp catch_exit(fun) do
    fun.()
  catch
    :exit, reason -> {:exit, reason}
  end

  defp percentile([], _p), do: nil

  defp percentile(values, p) do
    sorted = Enum.sort(values)
    Enum.at(sorted, min(length(sorted) - 1, div(length(sorted) * p, 100)))
  end

  defp latency_table(nil), do: ""

  defp latency_table(latency) do
    row = fn caller, label, p ->
      case {latency[{caller, :beam}], latency[{caller, :rust}]} do
        {b, r} when is_list(b) and is_list(r) and b != [] and r != [] ->
          {pb, pr} = {percentile(b, p), percentile(r, p)}
          "| #{label} | #{pb} | #{pr} | #{Float.round(pr / max(pb, 1), 2)}× |\n"

        {b, r} ->
          "| #{label} | #{inspect(b, limit: 3)} | #{inspect(r, limit: 3)} | — |\n"
      end
    end

    count = fn key -> if is_list(latency[key]), do: length(latency[key]), else: 0 end

    "\n| small `GenServer.call` echo while another process of the same caller sends 64 MB " <>
      "messages to the same server (latency, µs; the BEAM caller made " <>
      "#{count.({:beam, :beam})} and #{count.({:beam, :rust})} calls, the Rust caller " <>
      "#{count.({:rust, :beam})} and #{count.({:rust, :rust})}) " <>
      "| BEAM | Rust | ratio |\n|---|---:|---:|---:|\n" <>
      row.(:beam, "p50, the BEAM caller", 50) <>
      row.(:beam, "p99, the BEAM caller", 99) <>
      row.(:rust, "p50, the Rust caller (`benches/dist.rs`)", 50) <>
      row.(:rust, "p99, the Rust caller (`benches/dist.rs`)", 99)
  end

  # ---- the Rust caller (benches/dist.rs client) ------------------------------------

  defp rust_caller_run(opts, wl, inflight, n, server) do
    measured(server, fn ->
      workload = ["--workload", wl, "--n", "#{n}", "--inflight", "#{inflight}"]

      case rust_client(opts, server.node, workload) do
        {:ok, ["RESULT", _wl, _k, _rate, secs, ops, ticks]} ->
          {:ok, String.to_integer(ops), round(String.to_float(secs) * 1_000_000),
           Util.ticks_to_ms(String.to_integer(ticks))}

        {:ok, fields} ->
          {:error, "the client said #{Enum.join(fields, " ")}"}

        error ->
          error
      end
    end)
  end

  # Runs `benches/dist.rs client` against `node` with the workload's options, within the
  # run's bound: `{:ok, fields}` of its `RESULT` line when it exits 0.
  defp rust_client(opts, node, workload) do
    args =
      ["-k", "5", "#{div(@run_timeout, 1000) + 30}", opts.client, "client"] ++
        ["--target", Atom.to_string(node), "--cookie", opts.cookie] ++
        workload ++ tls_args(opts)

    {out, code} = System.cmd("timeout", args, stderr_to_stdout: true)
    line = out |> String.split("\n") |> Enum.find(&String.starts_with?(&1, "RESULT "))

    if code == 0 and line != nil do
      {:ok, String.split(line, " ")}
    else
      {:error, "exit #{code}: #{String.slice(String.trim(out), 0, 300)}"}
    end
  end

  # N hidden connections from the Rust bench client: the server's RSS before and while
  # they are up.
  defp peers(opts, server, count) do
    rss0 = Util.rss_kib(server.ospid)
    cpu0 = Util.cpu_ms(server.ospid)

    port =
      Port.open({:spawn_executable, System.find_executable("timeout")}, [
        :binary,
        :exit_status,
        {:line, 4096},
        args:
          ["-k", "5", "200", opts.client, "peers"] ++
            ["--target", Atom.to_string(server.node), "--cookie", opts.cookie] ++
            ["--count", "#{count}", "--hold", "150"] ++ tls_args(opts)
      ])

    result = read_results(port, "peers_up", System.monotonic_time(:millisecond) + 170_000)

    case result do
      {:ok, r} ->
        cpu1 = Util.cpu_ms(server.ospid)
        Process.sleep(500)
        rss1 = Util.rss_kib(server.ospid)
        Port.close(port)
        # Let the server take the connections down before anything else runs.
        Process.sleep(1500)
        up = Map.get(r, "peers_up", 0)

        %{
          up: up,
          connect_s: Map.get(r, "peers_connect_s", 0.0),
          rss_before: rss0,
          rss_with: rss1,
          per_conn_kib: if(up > 0, do: (rss1 - rss0) / up, else: 0.0),
          cpu_ms_per_conn: if(up > 0, do: (cpu1 - cpu0) / up, else: 0.0)
        }

      {:error, why} ->
        catch_close(port)
        {:error, why}
    end
  end

  defp catch_close(port) do
    Port.close(port)
  rescue
    _ -> :ok
  end

  # N TLS handshakes left pending by the Rust client (`benches/dist.rs pending`): the
  # server's RSS and CPU time before, and with them pending. Silent sockets cost the
  # server an accepted socket and what waits on it; `hello` ones also the server's half
  # of the handshake (its key share and signature) and the state it keeps for the rest.
  defp pending_batch(opts, server, count, hello?) do
    rss0 = Util.rss_kib(server.ospid)
    cpu0 = Util.cpu_ms(server.ospid)

    port =
      Port.open({:spawn_executable, System.find_executable("timeout")}, [
        :binary,
        :exit_status,
        {:line, 4096},
        args:
          ["-k", "5", "30", opts.client, "pending"] ++
            ["--target", Atom.to_string(server.node), "--count", "#{count}", "--hold", "5"] ++
            if(hello?, do: ["--hello"], else: []) ++ tls_args(opts)
      ])

    result = read_results(port, "pending_open", System.monotonic_time(:millisecond) + 20_000)

    case result do
      {:ok, %{"pending_open" => open, "pending_port" => listen} = r} ->
        # The last accepted sockets' work done (well within net_setuptime).
        Process.sleep(300)
        cpu1 = Util.cpu_ms(server.ospid)
        rss1 = Util.rss_kib(server.ospid)
        taken = open - accept_queue(listen)
        Port.close(port)
        # Let the server drop them before anything else runs.
        Process.sleep(1500)

        if taken > 0 do
          %{
            open: open,
            taken: taken,
            answered: Map.get(r, "pending_answered"),
            secs: Map.get(r, "pending_s"),
            rss_before: rss0,
            rss_with: rss1,
            cpu_ms: cpu1 - cpu0
          }
        else
          {:error, "the server took none of #{open} sockets"}
        end

      {:ok, r} ->
        catch_close(port)
        {:error, "the client said #{inspect(r)}"}

      {:error, why} ->
        catch_close(port)
        {:error, why}
    end
  end

  # Connections waiting in the listen queue of local TCP port `port` (not yet accepted):
  # a listening socket's rx_queue in /proc/net/tcp{,6}.
  defp accept_queue(port) do
    hex_field = fn field -> field |> String.split(":") |> List.last() |> String.to_integer(16) end

    ["/proc/net/tcp", "/proc/net/tcp6"]
    |> Enum.flat_map(fn file ->
      case File.read(file) do
        {:ok, text} -> text |> String.split("\n") |> Enum.drop(1) |> Enum.map(&String.split/1)
        _ -> []
      end
    end)
    # sl, local_address, rem_address, st (0A: LISTEN), tx_queue:rx_queue, ...
    |> Enum.filter(&match?([_, _, _, "0A", _ | _], &1))
    |> Enum.filter(fn [_, local | _] -> hex_field.(local) == port end)
    |> Enum.map(fn [_, _, _, _, queues | _] -> hex_field.(queues) end)
    |> Enum.sum()
  end

  # The `RESULT key value` lines of a client run until its `READY`, which must follow a
  # positive `count_key`.
  defp read_results(port, count_key, deadline, acc \\ %{}) do
    left = max(0, deadline - System.monotonic_time(:millisecond))

    receive do
      {^port, {:data, {:eol, "READY"}}} ->
        if Map.get(acc, count_key, 0) > 0,
          do: {:ok, acc},
          else: {:error, "none up (#{count_key})"}

      {^port, {:data, {:eol, "RESULT " <> rest}}} ->
        [k, v] = String.split(rest, " ")
        v = if String.contains?(v, "."), do: String.to_float(v), else: String.to_integer(v)
        read_results(port, count_key, deadline, Map.put(acc, k, v))

      {^port, {:data, _}} ->
        read_results(port, count_key, deadline, acc)

      {^port, {:exit_status, s}} ->
        {:error, "the client exited with #{s}"}
    after
      left -> {:error, "the client timed out"}
    end
  end
end
