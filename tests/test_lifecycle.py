"""The one run lifecycle (plasticrl.trainers.lifecycle.RunLoop), on a trainer whose step is arithmetic."""
import json
import math

import pytest
import torch

from plasticrl.config import load_config
from plasticrl.errors import PlasticRLError
from plasticrl.trainers.lifecycle import RunLoop, RunState
from plasticrl.trainers.ppo.trainer import PPOTrainer
from plasticrl.trainers.es import ESTrainer


class CountingTrainer(RunLoop):
    """Step g adds 10 env steps; the genome is [g]; its evaluation returns ``scores[g]``. Records the
    order of the writes (metrics rows and checkpoints)."""

    def __init__(self, config, run_dir, scores, events):
        super().__init__(config, run_dir)
        self.scores, self.events = scores, events

    @property
    def policy_kernel(self) -> str:
        return "torch"

    def _fresh_state(self):
        return RunState(wandb_id="x")

    def _load_checkpoint(self):
        return RunState(**RunState.counters_from(torch.load(self.run_dir / "checkpoint.pt", weights_only=True)))

    def _save_checkpoint(self, state):
        self.events.append(("checkpoint", state.generation))
        torch.save(state.counters(), self.run_dir / "checkpoint.pt")

    def _step(self, state):
        state.generation += 1
        state.env_steps += 10
        return {"generation": state.generation, "env_steps": state.env_steps}

    def _current_genome(self, state):
        return torch.tensor([float(state.generation)])

    def _evaluate(self, genome, state):
        return self.scores[int(genome[0])], 0.0

    def _save_agent(self, name, genome, state, eval_return):
        self.events.append((name, int(genome[0]), eval_return))
        return self.run_dir / name


def _config(*extra):
    return load_config(None, ["policy.kind=linear", "train.eval_every=2", "train.checkpoint_every=2",
                              "logging.wandb.mode=disabled", "logging.progress=false", *extra])


def test_rows_precede_checkpoints_and_only_scheduled_evaluations_enter_the_state(tmp_path):
    scores = {g: float(s) for g, s in enumerate([0, 5, 3, 1, 8, 2, 9])}
    events = []
    trainer = CountingTrainer(_config("train.generations=5"), tmp_path / "run", scores, events)
    trainer.add_callback(lambda m: events.append(("callback", m["generation"])))
    result = trainer.train()
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = [r["generation"] for r in logged]
    assert rows == [1, 2, 3, 4, 5]
    # evaluated at 2 and 4 only (the schedule); the best of those is 4 (score 8)
    assert [r.get("eval_return_mean") for r in logged] == [None, 3.0, None, 8.0, None]
    checkpoints = [g for kind, g, *_ in events if kind == "checkpoint"]
    assert checkpoints == [2, 4, 5, 5]  # the schedule, the last step, and the final save
    # each checkpointed step's callback (after its row) comes after its checkpoint
    order = [e for e in events if e[0] in ("checkpoint", "callback")]
    assert order.index(("checkpoint", 2)) < order.index(("callback", 2))
    # the final genome (5) is evaluated off the schedule at the end: 2.0 < 8.0, so not the best
    assert result.best_eval_return == 8.0 and result.best_generation == 4 and result.final_eval_return == 2.0
    assert ("final_agent.pt", 5, 2.0) in events and ("best_agent.pt", 4, 8.0) in events
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["best_generation"] == 4 and summary["env_steps"] == 50 and summary["policy_kernel"] == "torch"


def test_a_final_genome_better_than_the_scheduled_best_is_the_runs_best_but_not_the_checkpoints(tmp_path):
    scores = {g: float(g) for g in range(10)}  # rising: the unscheduled final genome 5 beats 4
    events = []
    result = CountingTrainer(_config("train.generations=5"), tmp_path / "run", scores, events).train()
    assert result.best_generation == 5 and ("best_agent.pt", 5, 5.0) in events
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["best"]["generation"] == 4


def test_the_step_budget_ends_the_run_and_a_resume_may_not_shorten_it(tmp_path):
    scores = {g: 1.0 for g in range(10)}
    result = CountingTrainer(_config("train.generations=9", "train.max_env_steps=30"), tmp_path / "run",
                             scores, []).train()
    assert result.generations == 3 and result.env_steps == 30
    with pytest.raises(PlasticRLError, match="has done 3 generations; train.generations=2 would end it"):
        CountingTrainer(_config("train.generations=2"), tmp_path / "run", scores, []).train(resume=True)


def test_es_and_ppo_trainers_share_the_lifecycle():
    from plasticrl.trainers.sb3.trainer import SB3Trainer

    assert issubclass(ESTrainer, RunLoop) and issubclass(PPOTrainer, RunLoop) and issubclass(SB3Trainer, RunLoop)
    # one implementation of the lifecycle: none overrides it
    for cls in (ESTrainer, PPOTrainer, SB3Trainer):
        for name in ("train", "_train_held", "_loop", "_finish"):
            assert getattr(cls, name) is getattr(RunLoop, name), (cls, name)


def _same(a, b):
    """Equal plain data, tensors compared exactly (NaN-free by construction)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


ES_TINY = ["env.id=InvertedPendulum-v5", "env.max_episode_steps=20", "policy.kind=linear",
           "es.params={population_size: 4, sigma: 0.1, learning_rate: 0.05}", "train.eval_episodes=1",
           "logging.wandb.mode=disabled", "logging.progress=false"]


def test_es_state_round_trips_through_the_checkpoint_and_reads_the_dict_form(tmp_path):
    from plasticrl.trainers.es import ESState
    from plasticrl.trainers.lifecycle import BestEvaluation

    trainer = ESTrainer(load_config(None, ES_TINY), tmp_path / "run")
    try:
        state = trainer._fresh_state()
        trainer._step(state)
        trainer._step(state)  # the ES state and statistics after two generations, not the initial ones
        state.elapsed = 1.25
        genome = trainer._current_genome(state)
        state.best = BestEvaluation(eval_return=3.5, generation=2, genome=genome.clone(), env_steps=state.env_steps,
                                    obs_norm=state.obs_norm.state_dict())
        trainer._save_checkpoint(state)
        back = trainer._load_checkpoint()
        assert isinstance(back, ESState) and back.generation == 2 and back.env_steps == state.env_steps > 0
        assert back.elapsed == 1.25 and back.wandb_id == state.wandb_id == "run"
        assert back.best.eval_return == 3.5 and back.best.generation == 2 and back.best.env_steps == state.env_steps
        assert torch.equal(back.best.genome, genome) and _same(back.best.obs_norm, state.obs_norm.state_dict())
        assert _same(back.obs_norm.state_dict(), state.obs_norm.state_dict())
        assert _same(trainer.algo.state_dict(back.es), trainer.algo.state_dict(state.es))
        # the dict form every ES checkpoint had before the typed state (best without env_steps/obs_norm
        # in the oldest ones) still loads, and a resume leaves such a best_agent.pt alone
        old = {"format": 1, "es": trainer.algo.state_dict(state.es), "obs_norm": state.obs_norm.state_dict(),
               "generation": 2, "env_steps": state.env_steps, "elapsed": 1.25, "wandb_id": "run",
               "best": {"eval_return": 3.5, "generation": 2, "genome": genome.clone()}}
        torch.save(old, tmp_path / "run" / "checkpoint.pt")
        back = trainer._load_checkpoint()
        assert back.best.env_steps is None and back.best.obs_norm is None and torch.equal(back.best.genome, genome)
        assert _same(trainer.algo.state_dict(back.es), old["es"])
        assert _same(back.best.to_dict(), old["best"])  # written back in the same dict form
    finally:
        trainer.close()


def test_ppo_state_round_trips_through_the_checkpoint(tmp_path):
    from plasticrl.trainers.ppo.trainer import PPOState

    config = load_config(None, ["trainer=ppo", "env.id=InvertedPendulum-v5", "env.max_episode_steps=10",
                                "policy.hidden=[4]", "train.eval_episodes=1", "logging.wandb.mode=disabled",
                                "logging.progress=false",
                                "ppo={num_envs: 2, rollout_steps: 10, seq_len: 5, epochs: 1, minibatch_sequences: 2}"])
    trainer = PPOTrainer(config, tmp_path / "run")
    try:
        state = trainer._fresh_state()
        trainer._step(state)
        genome, critic = trainer.genome.detach().clone(), {k: v.clone() for k, v in trainer.critic.state_dict().items()}
        trainer._save_checkpoint(state)
        with torch.no_grad():  # the trainer's tensors move on; the checkpoint puts them back
            trainer.genome.add_(1.0)
            next(iter(trainer.critic.parameters())).add_(1.0)
        back = trainer._load_checkpoint()
        assert isinstance(back, PPOState) and back.generation == 1 and back.env_steps == 20
        assert back.best.eval_return == -math.inf and back.best.genome is None and back.best.generation == -1
        assert _same(back.obs_norm.state_dict(), state.obs_norm.state_dict()) and back.obs_norm.count > 0
        assert _same(back.ret_norm.state_dict(), state.ret_norm.state_dict()) and back.ret_norm.count > 0
        assert torch.equal(trainer.genome.detach(), genome)
        assert _same({k: v for k, v in trainer.critic.state_dict().items()}, critic)
    finally:
        trainer.close()
