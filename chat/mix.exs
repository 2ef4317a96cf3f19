defmodule Chat.MixProject do
  use Mix.Project

  def project do
    [
      app: :chat,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      deps: deps()
    ]
  end

  # Run "mix help compile.app" to learn about applications.
  def application do
    [
      extra_applications: [:logger] ++ tls_distribution(),
      mod: {Chat.Application, []}
    ]
  end

  # Started with `--erl "-proto_dist inet_tls ..."`, the node runs its distribution over
  # TLS and needs :ssl, which Mix (Elixir 1.15+) otherwise prunes from the code path.
  defp tls_distribution do
    case :init.get_argument(:proto_dist) do
      {:ok, [[~c"inet_tls"]]} -> [:ssl]
      _ -> []
    end
  end

  # Run "mix help deps" to learn about dependencies.
  defp deps do
    [
      # {:dep_from_hexpm, "~> 0.3.0"},
      # {:dep_from_git, git: "https://github.com/elixir-lang/my_dep.git", tag: "0.1.0"}
    ]
  end
end
