from miaflow.rl import ExperienceBuffer


def test_add_is_idempotent_and_durable(tmp_path, make_group):
    path = tmp_path / "buf" / "groups.sqlite"
    buf = ExperienceBuffer(path)
    assert buf.add(make_group("e0-q0"))
    assert not buf.add(make_group("e0-q0", rewards=(0.0, 0.0, 0.0, 1.0)))
    assert buf.add(make_group("e0-q1", rewards=(0.2, 0.2, 0.2, 0.2)))
    assert buf.add(make_group("e0-q2"))
    buf.close()
    # nothing lost on reopen (the file is the state)
    buf = ExperienceBuffer(path)
    s = buf.stats()
    assert (s.total, s.pending, s.zero_variance, s.trained) == (3, 2, 1, 0)
    assert s.zero_variance_share == 1 / 3
    pend = buf.pending()
    assert [g.group_id for g in pend] == ["e0-q0", "e0-q2"]
    assert pend[0].rewards == [1.0, 0.0, 0.5, 0.0]  # the first copy was kept
    buf.mark_trained(["e0-q0"], "v1")
    assert [g.group_id for g in buf.pending()] == ["e0-q2"]
    assert buf.stats().trained == 1 and "e0-q1" in buf
    assert buf.count_pending(role="executor") == 0
