"""Policy side of plasticrl (installed as plasticrl.agents)."""
