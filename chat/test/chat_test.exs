defmodule ChatTest do
  use ExUnit.Case

  test "the task supervisor of the lesson is running" do
    assert is_pid(Process.whereis(Chat.TaskSupervisor))
  end

  test "receive_message prints the message" do
    assert ExUnit.CaptureIO.capture_io(fn -> Chat.receive_message("hi") end) == "hi\n"
  end

  test "Chat.Echo answers calls with the request" do
    {:ok, pid} = Chat.Echo.start(nil)
    assert Chat.Echo.call(pid, {:hello, [1, 2.5, "x"]}) == {:hello, [1, 2.5, "x"]}
    send(pid, {self(), :back})
    assert_receive :back
    GenServer.cast(pid, {self(), :cast_back})
    assert_receive :cast_back
    Chat.Echo.stop(pid)
  end
end
