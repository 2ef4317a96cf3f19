defmodule CnodeBench.MixProject do
  use Mix.Project

  # The BEAM side of scripts/bench: the BEAM Moebi server and the caller (driver).
  # Depends on the seed's Chat app (../chat) for Chat, Chat.TaskSupervisor, Chat.Echo.
  def project do
    [
      app: :cnode_bench,
      version: "0.1.0",
      elixir: "~> 1.14",
      deps: [{:chat, path: "../chat"}]
    ]
  end

  def application do
    [extra_applications: [:logger]]
  end
end
