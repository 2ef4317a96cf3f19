defmodule Chat do
  @moduledoc """
  The Chat app from the Elixir School lesson on OTP distribution.

  Start two nodes and send messages between them:

      $ iex --sname alex@localhost --cookie secret_token -S mix
      $ iex --sname kate@localhost --cookie secret_token -S mix

  then, on alex:

      Chat.send_message(:kate@localhost, "hi")
      #=> :ok

  and `hi` is printed on kate's console. A message sent to `:moebi@localhost`
  is printed on moebi, which answers `"chicken?"` to the sender.

  The only difference from the lesson: besides `:moebi@localhost` itself, any
  node whose name starts with `"moebi"` (e.g. `:moebi_4242_0@localhost`) is
  treated as moebi, so tests can run several moebis in parallel under their
  own names. Messages to `:moebi@localhost` and to every other node behave
  exactly as in the lesson.
  """

  def receive_message(message) do
    IO.puts message
  end

  def send_message(:moebi@localhost, message) do
    spawn_task(__MODULE__, :receive_message_for_moebi, :moebi@localhost, [message, Node.self()])
  end

  def send_message(recipient, message) do
    # Not in the lesson: any "moebi*" node gets the moebi treatment.
    if moebi?(recipient) do
      spawn_task(__MODULE__, :receive_message_for_moebi, recipient, [message, Node.self()])
    else
      spawn_task(__MODULE__, :receive_message, recipient, [message])
    end
  end

  def spawn_task(module, fun, recipient, args) do
    recipient
    |> remote_supervisor()
    |> Task.Supervisor.async(module, fun, args)
    |> Task.await()
  end

  defp remote_supervisor(recipient) do
    {Chat.TaskSupervisor, recipient}
  end

  def receive_message_for_moebi(message, from) do
    IO.puts message
    send_message(from, "chicken?")
  end

  # Not in the lesson: true for atoms whose text starts with "moebi".
  defp moebi?(node) when is_atom(node), do: String.starts_with?(Atom.to_string(node), "moebi")
  defp moebi?(_), do: false
end
