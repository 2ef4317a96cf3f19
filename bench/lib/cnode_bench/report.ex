defmodule CnodeBench.Report do
  @moduledoc """
  The markdown report of `scripts/bench`: the main table (workload | BEAM | Rust |
  ratio | target met?), the four caller/server pairs, and how the run was made.
  Every figure is the median over the rounds. Under TLS distribution (`d.tls`) the same
  rows, named "TLS: ...", with the TLS targets (Rust at least twice as fast as the
  BEAM, at most half its cost) and the pending-handshake rows.
  """

  @labels %{
    task_seq: "1. `Task.Supervisor.async` + `Task.await`, sequential",
    task_64: "1. `Task.Supervisor.async` + `Task.await`, 64 in flight",
    nested_seq: "2. `Chat.send_message` (nested round trip), sequential",
    nested_64: "2. `Chat.send_message` (nested round trip), 64 in flight",
    call_small_seq: "3. `GenServer.call` echo, small term, sequential",
    call_small_64: "3. `GenServer.call` echo, small term, 64 in flight",
    call_list_seq: "3. `GenServer.call` echo, 200-element list, sequential",
    call_list_64: "3. `GenServer.call` echo, 200-element list, 64 in flight",
    send: "4. one-way `send`"
  }

  @r2r [:call_small_seq, :call_small_64, :call_list_seq, :call_list_64, :send]
  @pairs [
    :task_seq,
    :task_64,
    :call_small_seq,
    :call_small_64,
    :call_list_seq,
    :call_list_64,
    :send
  ]

  # {throughput from the BEAM caller, Rust→Rust, costs (CPU per op and per connection)}.
  @targets %{plain: {1.5, 5.0, 1 / 3}, tls: {2.0, 2.0, 0.5}}

  def build(d) do
    send_n = send_n(d)
    tls = Map.get(d, :tls, false)
    {t_beam, t_r2r, t_cost} = @targets[if(tls, do: :tls, else: :plain)]
    # Every row of the TLS report reads "TLS: ..."; the pairs tables keep plain names.
    pre = if tls, do: "TLS: ", else: ""
    label = fn key -> label(key, send_n) end

    text = fn key -> String.replace(label.(key), ~r/^\d\. /, "") end
    keys = for {key, _kind, _k, _n, _nq} <- d.workloads, do: key

    throughput =
      for key <- keys do
        # Workload 4's target is against BEAM-to-BEAM, so its Rust figure is Rust-to-Rust
        # (the row in 5): here the one BEAM process sending is the bottleneck whichever
        # node receives, and the row shows only that receiving costs us no speed.
        target =
          if key == :send,
            do: {:note, "— (a BEAM sender; ≥ #{t_r2r}× is the Rust→Rust row in 5)"},
            else: {:at_least, t_beam}

        pair_row(d, key, :beam, :rate, pre <> label.(key) <> " (ops/s)", &rate/1, target)
      end

    # The sequential seed workloads with caller and server on one core (driver.ex,
    # @one_core_workloads): the round trips without the cross-core wake-ups.
    one_core =
      for key <- Map.get(d, :one_core, []) do
        name = pre <> label.(key) <> ", caller and server sharing one core (ops/s)"
        pair_row(d, key, :beam, :rate, name, &rate/1, {:note, "— (the servers' own share)"})
      end

    r2r =
      for key <- @r2r do
        name = pre <> "5. Rust→Rust vs BEAM→BEAM: " <> text.(key) <> " (ops/s)"
        pair_row(d, key, :rust, :rate, name, &rate/1, {:at_least, t_r2r})
      end

    cpu =
      for key <- keys do
        name = pre <> "6. serving CPU per 1,000 ops: " <> text.(key)
        pair_row(d, key, :beam, :cpu_per_1k, name, &ms/1, {:at_most, t_cost})
      end

    # The same cost with each server's own kind as the caller: what a Rust node and a
    # BEAM node each spend per operation when the other side is as fast as they are.
    cpu_own =
      for key <- @r2r do
        name = pre <> "6. serving CPU per 1,000 ops, Rust→Rust vs BEAM→BEAM: " <> text.(key)
        pair_row(d, key, :rust, :cpu_per_1k, name, &ms/1, {:at_most, t_cost})
      end

    # Round 1's 64-in-flight runs from the BEAM caller come before the first 1,000,000-message
    # send (which grows the heaps, and the grown heap stays resident).
    rss64 =
      for side <- [:beam, :rust] do
        rss_max(d.results, fn {key, caller, server}, run ->
          caller == :beam and server == side and run[:round] == 1 and
            String.ends_with?(Atom.to_string(key), "_64")
        end)
      end

    # How much a burst of one-way sends makes the receiver grow (its largest round): the
    # BEAM caller sends at the rate one BEAM process can, the Rust caller faster.
    rss_send =
      for caller <- [:beam, :rust], side <- [:beam, :rust] do
        rss_max(
          d.results,
          fn {key, c, server}, _run -> key == :send and c == caller and server == side end,
          :rss_growth
        )
      end

    peers = d.peers
    n = d.peer_count
    # Per connection and per handshake: targets under TLS only.
    per_conn = if tls, do: {:at_most, t_cost}, else: :none
    hidden = if tls, do: "hidden TLS peers", else: "hidden peers"

    peer_rows = [
      row(
        pre <> "6. memory per connection (#{n} #{hidden}, RSS delta / #{n})",
        peer(peers.beam, :per_conn_kib),
        peer(peers.rust, :per_conn_kib),
        &kib/1,
        per_conn
      ),
      row(
        pre <> "6. time to accept #{n} #{hidden} (handshakes, 32 at a time)",
        peer(peers.beam, :connect_s),
        peer(peers.rust, :connect_s),
        &secs/1,
        per_conn
      ),
      row(
        pre <>
          "6. serving CPU per accepted connection (#{if tls, do: "TLS + distribution handshake", else: "handshake"})",
        peer(peers.beam, :cpu_ms_per_conn),
        peer(peers.rust, :cpu_ms_per_conn),
        &ms/1,
        per_conn
      )
    ]

    pending = Map.get(d, :pending, %{})

    # Per socket the server took at once (the rest waited in its listen queue, costing it
    # nothing), and how many it took: for `hello`, the ClientHellos it answered within 3 s.
    pending_rows =
      for {variant, what, taken} <- [
            {:silent, "sockets silent after the TCP connect", {:taken, "accepted"}},
            {:hello, "sockets stalled after the ClientHello, its answer unread",
             {:answered, "answered within 3 s"}}
          ],
          Map.has_key?(pending, variant),
          {count, r} = pending[variant],
          {field, name, fmt, target} <- [
            {:per_kib, "memory per pending TLS handshake", &kib/1, {:at_most, t_cost}},
            {:cpu_ms_per, "serving CPU per pending TLS handshake", &ms/1, {:at_most, t_cost}},
            {elem(taken, 0), "pending TLS handshakes #{elem(taken, 1)}", &count/1, :none}
          ] do
        row(
          pre <> "6. #{name} (of #{count} #{what})",
          peer(r.beam, field),
          peer(r.rust, field),
          fmt,
          target
        )
      end

    idle_target = if tls, do: {:at_most, t_cost}, else: {:rust_at_most, 10 * 1024, "≤ 10 MiB"}

    cost =
      [
        row(
          pre <> "6. RSS idle (connected to the caller, before any workload)",
          d.idle.beam,
          d.idle.rust,
          &kib/1,
          idle_target
        ),
        row(
          pre <> "6. RSS peak under 64 callers (round 1, before any large send)",
          Enum.at(rss64, 0),
          Enum.at(rss64, 1),
          &kib/1,
          :none
        ),
        row(
          pre <>
            "6. RSS growth receiving #{delimit(send_n)} one-way sends from the BEAM caller (largest round)",
          Enum.at(rss_send, 0),
          Enum.at(rss_send, 1),
          &kib/1,
          :none
        ),
        row(
          pre <>
            "6. RSS growth receiving #{delimit(send_n)} one-way sends from the Rust caller (largest round)",
          Enum.at(rss_send, 2),
          Enum.at(rss_send, 3),
          &kib/1,
          :none
        ),
        row(pre <> "6. RSS 3 s after the whole suite", d.after.beam, d.after.rust, &kib/1, :none)
      ] ++ peer_rows ++ pending_rows

    # The BEAM caller's own CPU per operation, measured with the caller and the server on a
    # core each (driver.ex, @pinned_workloads): what each server's frames cost the caller.
    caller =
      for key <- Map.get(d, :pinned, []) do
        name = pre <> "6. the BEAM caller's CPU per 1,000 ops, caller and server on a core each: "
        pair_row(d, key, :beam, :caller_cpu_per_1k, name <> text.(key), &ms/1, {:at_most, 1.0})
      end

    # The same runs' scheduler active time: the caller's work on each server's frames,
    # without the busy-waiting of its CPU time (which fills every pause the server leaves).
    caller_work =
      for key <- Map.get(d, :pinned, []),
          Enum.any?(
            Map.get(d.results, {key, :beam, :beam}, []),
            &match?(%{caller_active_per_1k: _}, &1)
          ) do
        name =
          pre <>
            "6. the BEAM caller's work per 1,000 ops (its scheduler's active time, busy-waiting left out), caller and server on a core each: "

        pair_row(d, key, :beam, :caller_active_per_1k, name <> text.(key), &ms/1, {:at_most, 1.0})
      end

    rows = throughput ++ one_core ++ r2r ++ cpu ++ cpu_own ++ caller ++ caller_work ++ cost

    errors =
      Enum.count(rows, & &1.failed) + peer_errors(peers) +
        Enum.count(Map.values(pending), fn {_, r} -> peer_errors(r) > 0 end)

    missed = Enum.count(rows, &(&1.met == false))

    main = [
      "| workload | BEAM | Rust | ratio | target met? |",
      "|---|---:|---:|---:|---|"
      | Enum.map(rows, fn r ->
          "| #{r.label} | #{r.beam} | #{r.rust} | #{r.ratio} | #{r.verdict} |"
        end)
    ]

    pairs = pairs_table(d, label, tls)

    markdown =
      Enum.join(
        [
          if(tls, do: tls_intro(d), else: []),
          "Run: #{DateTime.utc_now() |> DateTime.truncate(:second) |> DateTime.to_iso8601()}, " <>
            "#{if d.quick, do: "--quick (small sizes, not for comparison)", else: "full"}, " <>
            "median of #{d.rounds} round#{if d.rounds == 1, do: "", else: "s"}, BEAM and Rust interleaved (order alternating by round). " <>
            "Machine: #{machine()}; load average #{d.load_before} before, #{d.load_after} after. " <>
            "Erlang/OTP #{:erlang.system_info(:otp_release)}, Elixir #{System.version()}. #{d.note}",
          "",
          if(tls,
            do: [],
            else: [
              "BEAM = the BEAM Moebi (`moebi_beam_*`: the Chat app + `Chat.Echo`), Rust = the Rust " <>
                "Moebi (`examples/moebi.rs`, release build); both served the same BEAM caller node " <>
                "(workloads 1-4 and 6). BEAM and Rust columns: medians over the rounds. Ratio = Rust / BEAM, " <>
                "the median of the rounds' ratios (the two runs of a round are back to back, so a change in the " <>
                "machine's load hits both), with the lowest and highest round in parentheses; " <>
                "throughput: higher is better, CPU: lower is better.",
              ""
            ]
          ),
          main,
          "",
          pairs,
          ""
        ]
        |> List.flatten(),
        "\n"
      )

    %{markdown: markdown, errors: errors, missed: missed}
  end

  # The TLS report follows the plain one in the same file: its own heading and setup.
  defp tls_intro(d) do
    n = d.peer_count

    [
      "### Under TLS distribution",
      "",
      "The same suite with every node under `-proto_dist inet_tls -ssl_dist_optfile dist.conf` " <>
        "(`verify_peer` both ways, a client certificate required; one ECDSA P-256 certificate for " <>
        "`localhost` from a CA of the run): fresh servers (`moebi_rs_tls_*` with `--ssl-dist-optfile`, " <>
        "`moebi_beam_tls_*`) and a fresh BEAM caller, the Rust client with the same three files. " <>
        "The #{n} peers complete the TLS handshake, then the distribution handshake inside it. " <>
        "Pending handshakes: sockets that never finish one (`benches/dist.rs pending`), opened 32 at a " <>
        "time against servers started for that measurement alone (one pair per kind), the server's RSS " <>
        "and CPU time read 0.3 s after the last is open (or answered), within net_setuptime, and divided " <>
        "by the sockets the server took (those left in its listen queue cost it nothing); memory from " <>
        "the first batch, CPU time over #{batches(d)}. Columns and ratios as in the table above; " <>
        "target: Rust at least twice as fast as the BEAM (≥ 2.0×), at most half its cost (≤ 0.5×).",
      ""
    ]
  end

  defp batches(d) do
    n =
      Enum.find_value(Map.values(Map.get(d, :pending, %{})), 1, fn {_count, r} ->
        Enum.find_value(Map.values(r), &(is_map(&1) && &1[:batches]))
      end)

    if n == 1, do: "1 batch", else: "#{n} batches"
  end

  defp pairs_table(d, label, tls) do
    combos = [{:beam, :beam}, {:beam, :rust}, {:rust, :beam}, {:rust, :rust}]
    name = %{beam: "BEAM", rust: "Rust"}

    head =
      "| workload | " <>
        Enum.map_join(combos, " | ", fn {c, s} -> "#{name[c]}→#{name[s]}" end) <> " |"

    sep = "|---|" <> String.duplicate("---:|", length(combos))

    table = fn cell ->
      [
        head,
        sep
        | for key <- @pairs do
            cells = Enum.map_join(combos, " | ", fn {c, s} -> cell.({key, c, s}) end)
            "| #{String.replace(label.(key), ~r/^\d\. /, "")} | #{cells} |"
          end
      ]
    end

    rates = table.(fn k -> rate(median(d.results, k, :rate)) end)

    cpu =
      table.(fn k ->
        "#{us(median(d.results, k, :cpu_per_1k))} / #{us(median(d.results, k, :caller_cpu_per_1k))}"
      end)

    over = if tls, do: " over TLS", else: ""

    [
      "Throughput of all four caller → server pairs#{over} (ops/s; the Rust caller is `benches/dist.rs client`, a cnode node):",
      "",
      rates,
      "",
      "CPU time per operation#{over}, server / caller (µs per op = ms per 1,000 ops; the BEAM's includes its schedulers' busy-waiting, as deployed):",
      "",
      cpu
    ]
  end

  defp us({:failed, _}), do: "FAILED"
  defp us(nil), do: "—"
  defp us(v) when v >= 100, do: "#{round(v)}"
  defp us(v), do: :erlang.float_to_binary(v * 1.0, decimals: 1)

  defp label(:send, n), do: @labels[:send] <> " of #{delimit(n)} small messages"
  # A run on a core each (`:call_small_64_pinned`) has the label of its workload.
  defp label(key, _) do
    Map.get_lazy(@labels, key, fn ->
      base =
        key
        |> Atom.to_string()
        |> String.replace_suffix("_pinned", "")
        |> String.replace_suffix("_one_core", "")

      @labels[String.to_existing_atom(base)]
    end)
  end

  defp send_n(d) do
    Enum.find_value(d.workloads, fn
      {:send, _, _, n, nq} -> if d.quick, do: nq, else: n
      _ -> nil
    end)
  end

  defp peer({:error, _}, _), do: {:failed, "failed"}
  defp peer(map, key), do: Map.get(map, key)

  defp peer_errors(peers), do: Enum.count(Map.values(peers), &match?({:error, _}, &1))

  # A median over the rounds; {:failed, why} when a round failed.
  defp median(results, k, field) do
    runs = Map.get(results, k, [])

    case Enum.find(runs, &match?({:error, _}, &1)) do
      {:error, why} ->
        {:failed, why}

      nil when runs == [] ->
        nil

      nil ->
        runs |> Enum.map(&Map.fetch!(&1, field)) |> median_of()
    end
  end

  defp rss_max(results, keep?, field \\ :rss_max) do
    results
    |> Enum.flat_map(fn {k, runs} ->
      for %{} = run <- runs, keep?.(k, run), do: Map.fetch!(run, field)
    end)
    |> Enum.max(fn -> nil end)
  end

  # The median over the rounds of Rust / BEAM, each round's two runs having been made
  # one right after the other: steadier than a ratio of medians on a shared machine.
  defp paired(results, kb, kr, field) do
    pairs = Enum.zip(Map.get(results, kb, []), Map.get(results, kr, []))

    ratios =
      for {%{} = b, %{} = r} <- pairs, Map.fetch!(b, field) > 0 do
        Map.fetch!(r, field) / Map.fetch!(b, field)
      end

    if ratios == [] or length(ratios) < length(pairs),
      do: nil,
      else: {median_of(ratios), Enum.min(ratios), Enum.max(ratios)}
  end

  defp median_of(values) do
    sorted = Enum.sort(values)
    len = length(sorted)

    if rem(len, 2) == 1,
      do: Enum.at(sorted, div(len, 2)),
      else: (Enum.at(sorted, div(len, 2) - 1) + Enum.at(sorted, div(len, 2))) / 2
  end

  # One workload's `field` served by the BEAM Moebi to the BEAM caller against the Rust
  # Moebi served by `rust_caller` (:beam, the same caller; :rust, the Rust client).
  defp pair_row(d, key, rust_caller, field, label, fmt, target) do
    beam_run = {key, :beam, :beam}
    rust_run = {key, rust_caller, :rust}

    row(
      label,
      median(d.results, beam_run, field),
      median(d.results, rust_run, field),
      fmt,
      target,
      paired(d.results, beam_run, rust_run, field)
    )
  end

  defp row(label, beam, rust, fmt, target, paired_ratio \\ nil) do
    failed = match?({:failed, _}, beam) or match?({:failed, _}, rust)

    {ratio, met, verdict} =
      cond do
        failed ->
          {"", nil, "**FAILED**"}

        not is_number(beam) or not is_number(rust) ->
          {"", nil, "—"}

        true ->
          {ratio, range} =
            case paired_ratio do
              {m, lo, hi} when lo < hi -> {m, " (#{x(lo)}–#{x(hi)})"}
              {m, _, _} -> {m, ""}
              nil -> {if(beam > 0, do: rust / beam, else: nil), ""}
            end

          ratio_text = if ratio, do: "#{x(ratio)}×" <> range, else: ""

          case target do
            :none ->
              {ratio_text, nil, "—"}

            {:note, text} ->
              {ratio_text, nil, text}

            {:at_least, t} ->
              met = ratio != nil and ratio >= t
              {ratio_text, met, verdict("≥ #{t}×", met)}

            {:at_most, t} ->
              met = ratio != nil and ratio <= t
              {ratio_text, met, verdict("≤ #{Float.round(t, 2)}×", met)}

            {:rust_at_most, v, text} ->
              met = rust <= v
              {ratio_text, met, verdict(text, met)}
          end
      end

    %{
      label: label,
      beam: cell(beam, fmt),
      rust: cell(rust, fmt),
      ratio: ratio,
      met: met,
      verdict: verdict,
      failed: failed
    }
  end

  defp x(v), do: :erlang.float_to_binary(v * 1.0, decimals: 2)

  defp verdict(text, true), do: "yes (#{text})"
  defp verdict(text, false), do: "**no** (#{text})"

  defp cell({:failed, why}, _),
    do: "FAILED: " <> String.replace(String.slice(why, 0, 60), "|", "/")

  defp cell(nil, _), do: "—"
  defp cell(v, fmt), do: fmt.(v)

  defp rate({:failed, _}), do: "FAILED"
  defp rate(nil), do: "—"
  defp rate(v), do: delimit(round(v))

  defp ms({:failed, _}), do: "FAILED"
  defp ms(nil), do: "—"
  defp ms(v) when v >= 100, do: "#{round(v)} ms"
  defp ms(v), do: "#{:erlang.float_to_binary(v * 1.0, decimals: 2)} ms"

  defp kib(v) when v >= 10 * 1024, do: "#{:erlang.float_to_binary(v / 1024, decimals: 1)} MiB"
  defp kib(v), do: "#{:erlang.float_to_binary(v * 1.0, decimals: 1)} KiB"

  defp count(v), do: delimit(round(v))

  defp secs(v), do: "#{:erlang.float_to_binary(v * 1.0, decimals: 2)} s"

  defp delimit(n) do
    n
    |> Integer.to_string()
    |> String.reverse()
    |> String.graphemes()
    |> Enum.chunk_every(3)
    |> Enum.map_join(",", &Enum.join/1)
    |> String.reverse()
  end

  defp machine do
    cores = :erlang.system_info(:logical_processors_available)
    cores = if is_integer(cores), do: cores, else: :erlang.system_info(:logical_processors)

    model =
      case File.read("/proc/cpuinfo") do
        {:ok, s} ->
          case Regex.run(~r/model name\s*:\s*(.*)/, s) do
            [_, m] -> String.trim(m)
            _ -> "?"
          end

        _ ->
          "?"
      end

    mem =
      case File.read("/proc/meminfo") do
        {:ok, s} ->
          case Regex.run(~r/MemTotal:\s*(\d+)/, s) do
            [_, kb] -> "#{round(String.to_integer(kb) / 1024 / 1024)} GiB"
            _ -> "?"
          end

        _ ->
          "?"
      end

    "#{cores} cores (#{model}), #{mem} RAM"
  end
end
