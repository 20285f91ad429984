"""TemplateStore contract, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from storage import Storage
from storage.exceptions import ConsentRequired, InvalidInput, NotFound, TemplateKeyError
from tests.storage.conftest import OpenStore
from tests.storage.helpers import OTHER_KEY, id_number, raw_rows, tamper, vector

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def consenting_learner(store: Storage, seed: int) -> int:
    inst = store.registry.create_institution(f"I{seed}").id
    learner = store.registry.create_learner(inst, f"L{seed}", id_number(seed))
    store.registry.record_consent(learner.id, "v1", NOW)
    return learner.id


def test_templates_round_trip_exactly(store: Storage) -> None:
    learner = consenting_learner(store, 1)
    other = consenting_learner(store, 2)
    v1, v2, v3 = vector(1), vector(2), vector(3)
    t1 = store.templates.add(learner, v1, "ab" * 32)
    t2 = store.templates.add(learner, v2, None)
    t3 = store.templates.add(other, v3, None)
    assert t1.evidence_sha256 == "ab" * 32 and t1.created_at.tzinfo is not None
    loaded = store.templates.for_learner(learner)
    assert [t.id for t in loaded] == [t1.id, t2.id]
    assert np.array_equal(loaded[0].vector, v1) and loaded[0].vector.dtype == np.float64
    assert np.array_equal(loaded[1].vector, v2)
    assert not loaded[0].vector.flags.writeable
    assert [t.id for t in store.templates.all()] == [t1.id, t2.id, t3.id]
    assert np.array_equal(store.templates.all()[2].vector, v3)


def test_templates_are_not_stored_in_plaintext(store: Storage) -> None:
    learner = consenting_learner(store, 1)
    v = vector(1)
    store.templates.add(learner, v, None)
    ((nonce, ciphertext),) = raw_rows(store, "SELECT nonce, ciphertext FROM face_templates")
    stored = bytes(ciphertext)
    assert len(bytes(nonce)) == 12
    assert len(stored) == 128 * 8 + 16  # float64 vector + GCM tag
    plain = v.astype("<f8").tobytes()
    assert plain not in stored
    # Not even one of the floats appears as its 8 bytes.
    assert not any(plain[i : i + 8] in stored for i in range(0, len(plain), 8))
    # Nonces are random: the same vector twice gives different ciphertext.
    store.templates.add(learner, v, None)
    rows = raw_rows(store, "SELECT nonce, ciphertext FROM face_templates ORDER BY id")
    assert bytes(rows[0][0]) != bytes(rows[1][0]) and bytes(rows[0][1]) != bytes(rows[1][1])


def test_a_wrong_key_fails_clearly(open_store: OpenStore) -> None:
    right = open_store()
    learner = consenting_learner(right, 1)
    right.templates.add(learner, vector(1), None)
    wrong = open_store(key=OTHER_KEY)
    with pytest.raises(TemplateKeyError, match="template_key"):
        wrong.templates.for_learner(learner)
    with pytest.raises(TemplateKeyError):
        wrong.templates.all()


def test_a_ciphertext_moved_to_another_learner_fails_authentication(store: Storage) -> None:
    victim = consenting_learner(store, 1)
    impostor = consenting_learner(store, 2)
    template = store.templates.add(victim, vector(1), None)
    tamper(
        store, "UPDATE face_templates SET learner_id = :l WHERE id = :t", l=impostor, t=template.id
    )
    with pytest.raises(TemplateKeyError, match="failed authentication"):
        store.templates.for_learner(impostor)


def test_enrolment_needs_active_consent(store: Storage) -> None:
    learner = consenting_learner(store, 1)
    store.registry.withdraw_consent(learner, NOW)
    with pytest.raises(ConsentRequired):
        store.templates.add(learner, vector(1), None)
    with pytest.raises(NotFound):
        store.templates.add(999, vector(1), None)
    assert store.templates.all() == []


def test_bad_vectors_are_refused(store: Storage) -> None:
    learner = consenting_learner(store, 1)
    bad: list[object] = [
        [0.1] * 128,
        np.zeros((2, 64)),
        np.array([], dtype=np.float64),
        np.array([np.nan] * 128),
        np.array(["a"] * 128),
    ]
    for value in bad:
        with pytest.raises(InvalidInput):
            store.templates.add(learner, value, None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        store.templates.add(learner, vector(1), "../../etc/passwd")
    assert store.templates.all() == []


def test_delete_for_learner(store: Storage) -> None:
    a, b = consenting_learner(store, 1), consenting_learner(store, 2)
    store.templates.add(a, vector(1), None)
    store.templates.add(a, vector(2), None)
    store.templates.add(b, vector(3), None)
    assert store.templates.delete_for_learner(a) == 2
    assert store.templates.delete_for_learner(a) == 0
    assert [t.learner_id for t in store.templates.all()] == [b]
