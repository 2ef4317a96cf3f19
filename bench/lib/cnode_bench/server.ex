defmodule CnodeBench.Server do
  @moduledoc """
  The BEAM Moebi of the benchmarks: a node named `moebi_beam_*` running the seed's
  Chat app (so `Chat.send_message/2` gives it the moebi treatment, exactly like the
  Rust Moebi) plus `Chat.Echo` registered as `:echo`, the counterpart of Moebi's
  `:echo`. Started by `scripts/bench`:

      elixir --sname moebi_beam_X@localhost --cookie C -pa ... -e "CnodeBench.Server.main()"

  It prints nothing of its own; the script sends its stdout (where the Chat app
  prints every message) to /dev/null, as it does for the Rust Moebi.
  """

  def main do
    CnodeBench.Util.logger_to_stderr()
    {:ok, _} = Application.ensure_all_started(:chat)
    {:ok, _} = Chat.Echo.start(:echo)
    CnodeBench.Util.halt_with_parent()
    Process.sleep(:infinity)
  end
end

defmodule CnodeBench.Util do
  @moduledoc false

  @doc "Logger output on stderr: stdout is where the Chat app prints messages."
  def logger_to_stderr do
    # Elixir 1.15+ logs through OTP's :default handler, 1.14 through its :console
    # backend (deprecated since); `apply` keeps either release from warning at compile.
    if Version.match?(System.version(), ">= 1.15.0") do
      :ok = :logger.remove_handler(:default)

      :ok =
        :logger.add_handler(:default, :logger_std_h, %{
          config: %{type: :standard_error},
          formatter: apply(Logger, :default_formatter, [])
        })
    else
      apply(Logger, :configure_backend, [:console, [device: :standard_error]])
    end
  end

  @doc """
  Halts this node when the OS process `$CNODE_BENCH_PARENT` (the bench script) is gone,
  so no node outlives an interrupted run.
  """
  def halt_with_parent do
    case System.get_env("CNODE_BENCH_PARENT") do
      nil ->
        :ok

      pid ->
        spawn(fn -> watch("/proc/" <> pid) end)
        :ok
    end
  end

  defp watch(path) do
    if File.exists?(path) do
      Process.sleep(1000)
      watch(path)
    else
      System.halt(3)
    end
  end

  @clk_tck (case System.cmd("getconf", ["CLK_TCK"]) do
              {n, 0} -> String.to_integer(String.trim(n))
              _ -> 100
            end)

  @doc "User + system CPU time of OS process `ospid`, in milliseconds."
  def cpu_ms(ospid) do
    stat = File.read!("/proc/#{ospid}/stat")
    # Fields after "(comm)": state is field 3, utime 14, stime 15.
    [_, rest] = String.split(stat, ") ", parts: 2)
    fields = String.split(rest, " ")
    utime = String.to_integer(Enum.at(fields, 11))
    stime = String.to_integer(Enum.at(fields, 12))
    ticks_to_ms(utime + stime)
  end

  @doc "Clock ticks (as in /proc/PID/stat) to milliseconds."
  def ticks_to_ms(ticks), do: ticks * 1000 / @clk_tck

  @doc "VmRSS of OS process `ospid`, in KiB."
  def rss_kib(ospid) do
    "/proc/#{ospid}/status"
    |> File.read!()
    |> String.split("\n")
    |> Enum.find_value(0, fn
      "VmRSS:" <> v -> v |> String.trim() |> String.split(" ") |> hd() |> String.to_integer()
      _ -> nil
    end)
  end

  @doc "The CPUs OS process `ospid` may run on (`taskset -p -c`), as a list of numbers."
  def cores(ospid), do: ospid |> affinity() |> cpu_list()

  @doc "The CPU list OS process `ospid` may run on, as `taskset -c` reads it (\"0-3,6\")."
  def affinity(ospid) do
    {out, 0} = System.cmd("taskset", ["-p", "-c", "#{ospid}"])
    # "pid 123's current affinity list: 0-3,6"
    out |> String.split(": ") |> List.last() |> String.trim()
  end

  @doc "Moves every thread of OS process `ospid` to the CPUs of `list` (\"1\", \"0-3\")."
  def set_affinity(ospid, list) do
    {_, 0} = System.cmd("taskset", ["-a", "-p", "-c", list, "#{ospid}"])
    :ok
  end

  defp cpu_list(text) do
    for part <- String.split(text, ","), part != "", cpu <- range(part), do: cpu
  end

  defp range(part) do
    case String.split(part, "-") do
      [a] -> [String.to_integer(a)]
      [a, b] -> Enum.to_list(String.to_integer(a)..String.to_integer(b))
    end
  end
end
