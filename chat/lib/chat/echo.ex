defmodule Chat.Echo do
  @moduledoc """
  Test and benchmark helper, not part of the seed (the lesson's Chat app).

  A GenServer that answers every `GenServer.call/2` with the request itself:

      iex> Chat.Echo.start(:echo)
      {:ok, pid}
      iex> Chat.Echo.call(:echo, {:hello, 1})
      {:hello, 1}
      iex> GenServer.call({:echo, :kate@localhost}, :ping)   # from another node
      :ping

  A Rust node can therefore send `{:"$gen_call", {pid, ref}, term}` to the
  registered name `:echo` and expect `{ref, term}` back.

  As plain messages it also accepts `{pid, term}` and sends `term` back to
  `pid`; casts `{pid, term}` do the same. Anything else is ignored.
  """
  use GenServer

  @doc """
  Starts an echo server outside any supervision tree (not linked to the caller,
  so it survives the process that started it). `name` is a local name to
  register (e.g. `:echo`) or `nil` for an anonymous server.
  """
  def start(name \\ :echo) do
    if name, do: GenServer.start(__MODULE__, nil, name: name), else: GenServer.start(__MODULE__, nil)
  end

  @doc "Calls the echo server `server`, which returns `term`."
  def call(server \\ :echo, term, timeout \\ 5000), do: GenServer.call(server, term, timeout)

  @doc "Stops the echo server `server`."
  def stop(server \\ :echo), do: GenServer.stop(server)

  @impl true
  def init(state), do: {:ok, state}

  @impl true
  def handle_call(term, _from, state), do: {:reply, term, state}

  @impl true
  def handle_cast({pid, term}, state) when is_pid(pid) do
    send(pid, term)
    {:noreply, state}
  end

  def handle_cast(_other, state), do: {:noreply, state}

  @impl true
  def handle_info({pid, term}, state) when is_pid(pid) do
    send(pid, term)
    {:noreply, state}
  end

  def handle_info(_other, state), do: {:noreply, state}
end
