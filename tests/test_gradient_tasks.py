"""Temporal task generators: structure, determinism, noise, loss normalisation, errors."""
import pytest
import torch
import torch.nn.functional as F

from plasticrl.errors import PlasticRLError
from plasticrl.studies.bptt import CueAssociationTask, PatternCompletionTask, make_task


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_cue_association_structure_and_mapping_redrawn_per_episode():
    task = CueAssociationTask(n_pairs=3, cue_dim=8, present_steps=2, gap_steps=1, query_steps=2, n_queries=4)
    b = task.sample(64, 0.0, gen())
    K, C = task.cue_dim, task.n_pairs
    assert b.obs.shape == (task.steps, 64, K + C) and task.steps == 3 * 3 + 4 * 2
    assert b.target.shape == b.scored.shape == (task.steps, 64, C)
    present = b.obs[..., K:].sum(-1) > 0                          # [T, B]: a class one-hot is shown
    assert torch.equal(b.signal > 0, present)
    assert int(present[:, 0].sum()) == C * task.present_steps
    mappings = set()
    for e in range(64):
        shown = {}
        for t in torch.nonzero(present[:, e]).flatten().tolist():
            cue = tuple(b.obs[t, e, :K].tolist())
            cls = int(b.obs[t, e, K:].argmax())
            assert shown.setdefault(cue, cls) == cls               # a cue keeps its class within the episode
        assert sorted(shown.values()) == list(range(C))           # the classes form a permutation
        for t in torch.nonzero(b.scored[:, e, 0]).flatten().tolist():
            cue = tuple(b.obs[t, e, :K].tolist())
            assert b.obs[t, e, K:].abs().sum() == 0                # queries show no target
            assert int(b.target[t, e].argmax()) == shown[cue]      # the answer is this episode's class
            assert sorted(b.target[t, e].tolist()) == [-1.0] * (C - 1) + [1.0]
        mappings.add(tuple(sorted(shown.items())))
    assert len(mappings) == 64                                    # fresh cues and mapping every episode
    scored_steps = b.scored.any(2).any(1).nonzero().flatten().tolist()
    first_query = C * (task.present_steps + task.gap_steps)
    assert scored_steps == [first_query + (q + 1) * task.query_steps - 1 for q in range(task.n_queries)]


@pytest.mark.parametrize("task", [CueAssociationTask(), PatternCompletionTask()])
def test_same_generator_same_batch_and_noise_has_requested_std(task):
    a, b = task.sample(8, 0.3, gen(5)), task.sample(8, 0.3, gen(5))
    assert all(torch.equal(x, y) for x, y in zip(vars(a).values(), vars(b).values()))
    assert not torch.equal(a.obs, task.sample(8, 0.3, gen(6)).obs)
    levels = torch.tensor([0.0, 0.5, 2.0, 0.0])
    g = gen(1)
    clean_state = g.get_state()
    noisy = task.sample(4, levels, g)
    g.set_state(clean_state)
    clean = task.sample(4, 0.0, g)  # same content draws; the noise draw comes last
    diff = noisy.obs - clean.obs
    assert not diff[:, 0].any() and not diff[:, 3].any()           # noise 0: inputs exact
    assert diff[:, 1].std().item() == pytest.approx(0.5, rel=0.25)
    assert diff[:, 2].std().item() == pytest.approx(2.0, rel=0.25)
    assert torch.equal(noisy.noise, levels)


def test_pattern_completion_hides_exactly_the_scored_entries_of_a_stored_pattern():
    task = PatternCompletionTask(n_patterns=3, pattern_dim=10, degrade=0.4, n_queries=3)
    b = task.sample(32, 0.0, gen(2))
    assert b.obs.shape == (task.steps, 32, 10) and task.hidden_entries == 4
    for e in range(32):
        stored = {tuple(b.obs[t, e].tolist()) for t in torch.nonzero(b.signal[:, e]).flatten().tolist()}
        assert len(stored) <= 3 and all(abs(v) == 1.0 for p in stored for v in p)
        for t in torch.nonzero(b.scored[:, e].any(1)).flatten().tolist():
            target, shown, hidden = b.target[t, e], b.obs[t, e], b.scored[t, e]
            assert tuple(target.tolist()) in stored
            assert int(hidden.sum()) == 4
            assert torch.equal(shown[hidden], torch.zeros(4))
            assert torch.equal(shown[~hidden], target[~hidden])


def test_cue_step_losses_sum_to_mean_cross_entropy_and_accuracy_counts_queries():
    task = CueAssociationTask(n_pairs=4, n_queries=3)
    b = task.sample(6, 0.1, gen(3))
    readout = torch.tanh(torch.randn(task.steps, 6, 4, generator=gen(4)))
    total = sum(task.step_loss(readout[t], b, t) for t in range(task.steps))
    mask = b.scored.any(2)
    expected = F.cross_entropy(task.logit_scale * readout[mask], b.target[mask].argmax(1))
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.equal(task.accuracy(b.target, b), torch.ones(6))     # the target itself scores 1
    assert torch.equal(task.accuracy(-b.target, b), torch.zeros(6))


def test_completion_accuracy_scores_hidden_entries_only():
    task = PatternCompletionTask(pattern_dim=8, degrade=0.5)
    b = task.sample(5, 0.0, gen(7))
    assert torch.equal(task.accuracy(b.target, b), torch.ones(5))
    visible_only = torch.where(b.scored, -b.target, b.target)        # right on visible, wrong on hidden
    assert torch.equal(task.accuracy(visible_only, b), torch.zeros(5))


def test_errors_name_the_bad_value_and_the_choices():
    with pytest.raises(PlasticRLError, match="cue_association, pattern_completion"):
        make_task("copy")
    with pytest.raises(PlasticRLError, match="'pairs'.*valid options: n_pairs"):
        make_task("cue_association", pairs=3)
    with pytest.raises(PlasticRLError, match="n_pairs must be an integer >= 2; got 1"):
        CueAssociationTask(n_pairs=1)
    with pytest.raises(PlasticRLError, match="degrade"):
        PatternCompletionTask(pattern_dim=4, degrade=0.9)
    with pytest.raises(PlasticRLError, match=r"noise levels must be finite and >= 0; got \[-0.5\]"):
        CueAssociationTask().sample(1, -0.5, gen())
    with pytest.raises(PlasticRLError, match="noise has 2 entries"):
        CueAssociationTask().sample(3, torch.tensor([0.1, 0.2]), gen())
    assert isinstance(make_task("pattern_completion", n_patterns=4), PatternCompletionTask)


def test_cues_are_distinct_within_every_episode_even_when_collisions_are_likely():
    task = CueAssociationTask(n_pairs=4, cue_dim=2, present_steps=1, gap_steps=0)  # only 4 patterns exist
    b = task.sample(50, 0.0, gen(9))
    for e in range(50):
        shown = {tuple(b.obs[t, e, :2].tolist()) for t in torch.nonzero(b.signal[:, e]).flatten().tolist()}
        assert len(shown) == 4
    with pytest.raises(PlasticRLError, match="cue_dim=2 gives 4 distinct cues; n_pairs=5"):
        CueAssociationTask(n_pairs=5, cue_dim=2)
