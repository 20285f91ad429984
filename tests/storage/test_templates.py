"""TemplateStore contract, on SQLite and PostgreSQL: encryption at rest, consent,
and the face model every template records (a check never gets another model's)."""

from __future__ import annotations

import base64
import pickle
from datetime import UTC, datetime

import numpy as np
import pytest
from alembic import command
from alembic.config import Config
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import insert, update

from config.settings import DatabaseSettings
from storage import Storage
from storage.engine import create_database
from storage.exceptions import (
    ConsentRequired,
    InvalidInput,
    NotFound,
    TemplateKeyError,
    TemplateModelMismatch,
)
from storage.migrate import MIGRATIONS_DIR, head_revision, upgrade
from storage.models import face_templates
from storage.templates_sql import key_id
from storage.types import LEGACY_DLIB_MODEL, TemplateModel
from tests.storage.conftest import OpenStore
from tests.storage.helpers import OTHER_KEY, TEMPLATE_KEY, id_number, raw_rows, tamper, vector

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


# -- templates know their model (revision 0006) --------------------------------------

SFACE = TemplateModel("sface", "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee")
OTHER_SFACE = TemplateModel("sface", "0" * 64)


def test_a_template_records_its_model(store: Storage) -> None:
    learner = consenting_learner(store, 1)
    legacy = store.templates.add(learner, vector(1), None)
    new = store.templates.add(learner, vector(2), None, SFACE)
    assert legacy.model == LEGACY_DLIB_MODEL and new.model == SFACE
    loaded = store.templates.for_learner(learner)
    assert [t.model for t in loaded] == [LEGACY_DLIB_MODEL, SFACE]
    assert np.array_equal(loaded[1].vector, vector(2))
    assert raw_rows(
        store, "SELECT engine, model_hash, aad_version FROM face_templates ORDER BY id"
    ) == [
        ("dlib", LEGACY_DLIB_MODEL.model_hash, 2),
        ("sface", SFACE.model_hash, 2),
    ]


def test_queries_by_model_return_that_model_only(store: Storage) -> None:
    a, b, c = (consenting_learner(store, i) for i in (1, 2, 3))
    store.templates.add(a, vector(1), None, LEGACY_DLIB_MODEL)
    store.templates.add(a, vector(2), None, SFACE)
    store.templates.add(b, vector(3), None, SFACE)
    store.templates.add(c, vector(4), None, LEGACY_DLIB_MODEL)
    assert [t.learner_id for t in store.templates.for_learner(a, SFACE)] == [a]
    assert [t.learner_id for t in store.templates.all(SFACE)] == [a, b]
    assert all(t.model == SFACE for t in store.templates.all(SFACE))
    assert [t.learner_id for t in store.templates.all(LEGACY_DLIB_MODEL)] == [a, c]
    assert store.templates.all(OTHER_SFACE) == []
    assert store.templates.learner_ids(SFACE) == [a, b]
    assert store.templates.learner_ids() == [a, b, c]
    assert store.templates.models() == {LEGACY_DLIB_MODEL: 2, SFACE: 2}
    assert store.templates.learners_without(SFACE) == [c]
    assert store.templates.learners_without(LEGACY_DLIB_MODEL) == [b]
    assert store.templates.learners_without(OTHER_SFACE) == [a, b, c]


def test_a_check_gets_its_own_models_templates_or_a_clear_refusal(store: Storage) -> None:
    enrolled_old = consenting_learner(store, 1)
    enrolled_both = consenting_learner(store, 2)
    never = consenting_learner(store, 3)
    store.templates.add(enrolled_old, vector(1), None, LEGACY_DLIB_MODEL)
    store.templates.add(enrolled_both, vector(2), None, LEGACY_DLIB_MODEL)
    store.templates.add(enrolled_both, vector(3), None, SFACE)
    (mine,) = store.templates.for_check(enrolled_both, SFACE)
    assert mine.model == SFACE and np.array_equal(mine.vector, vector(3))
    assert store.templates.for_check(never, SFACE) == []
    with pytest.raises(TemplateModelMismatch) as refused:
        store.templates.for_check(enrolled_old, SFACE)
    assert refused.value.learner_id == enrolled_old
    assert refused.value.wanted == SFACE.key and refused.value.found == (LEGACY_DLIB_MODEL.key,)
    assert "re-enrol" in str(refused.value)
    back = pickle.loads(pickle.dumps(refused.value))
    assert isinstance(back, TemplateModelMismatch) and back.found == refused.value.found


def test_bad_models_are_refused(store: Storage) -> None:
    learner = consenting_learner(store, 1)
    for bad in (
        TemplateModel("SFace!", SFACE.model_hash),
        TemplateModel("", SFACE.model_hash),
        TemplateModel("sface", "abc"),
        TemplateModel("sface", SFACE.model_hash.upper()),
    ):
        with pytest.raises(InvalidInput):
            store.templates.add(learner, vector(1), None, bad)
        with pytest.raises(InvalidInput):
            store.templates.all(bad)
    with pytest.raises(InvalidInput):
        store.templates.add(learner, vector(1), None, "sface")  # type: ignore[arg-type]
    assert store.templates.all() == []


def test_a_row_relabelled_with_another_model_fails_authentication(store: Storage) -> None:
    learner = consenting_learner(store, 1)
    template = store.templates.add(learner, vector(1), None, SFACE)
    tamper(
        store,
        "UPDATE face_templates SET engine = 'dlib', model_hash = :h WHERE id = :t",
        h=LEGACY_DLIB_MODEL.model_hash,
        t=template.id,
    )
    with pytest.raises(TemplateKeyError, match="another model"):
        store.templates.for_learner(learner)


def _migrate_to(url: str, revision: str, down: bool = False) -> None:
    db = create_database(DatabaseSettings(url=url))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with db.write() as conn:
            cfg.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(cfg, revision)
    finally:
        db.dispose()


def test_templates_from_before_revision_0006_are_labelled_dlib_and_still_decrypt(
    open_store: OpenStore, migrated_url: str
) -> None:
    first = open_store()
    learner = consenting_learner(first, 1)
    first.close()
    _migrate_to(migrated_url, "0005", down=True)
    # A row as the code before 0006 wrote it: no model, associated data v1.
    key = base64.b64decode(TEMPLATE_KEY)
    nonce = b"\x01" * 12
    plain = vector(7).astype("<f8").tobytes()
    db = create_database(DatabaseSettings(url=migrated_url))
    try:
        with db.write() as conn:
            template_id = conn.execute(
                insert(face_templates)
                .values(
                    learner_id=learner,
                    key_id=key_id(key),
                    nonce=nonce,
                    ciphertext=b"",
                    created_at=NOW,
                    evidence_sha256=None,
                )
                .returning(face_templates.c.id)
            ).scalar_one()
            ciphertext = AESGCM(key).encrypt(
                nonce, plain, f"face_templates:v1:{template_id}:{learner}".encode()
            )
            conn.execute(
                update(face_templates)
                .where(face_templates.c.id == template_id)
                .values(ciphertext=ciphertext)
            )
    finally:
        db.dispose()
    assert upgrade(migrated_url) == head_revision()
    store = open_store()
    (old,) = store.templates.for_learner(learner)
    assert old.model == LEGACY_DLIB_MODEL and np.array_equal(old.vector, vector(7))
    assert store.templates.for_check(learner, LEGACY_DLIB_MODEL)[0].id == old.id
    with pytest.raises(TemplateModelMismatch):
        store.templates.for_check(learner, SFACE)
    assert raw_rows(store, "SELECT aad_version FROM face_templates") == [(1,)]
