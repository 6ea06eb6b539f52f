"""The attacker's side: threat-model views of a copy, attack adapters, evidence generation."""
from tracer.attacks.advertorch_adapter import AdvertorchAttack
from tracer.attacks.art_adapter import ArtAttack, ArtWhiteBox
from tracer.attacks.boundary import BatchedBoundary
from tracer.attacks.generate import AttackSpec, attack_copy, shared_pool
from tracer.attacks.hsja import BatchedHopSkipJump
from tracer.attacks.oracle import (THREATS, HardLabelOracle, QueryBudgetExceeded, ScoreOracle,
                                   ThreatModelViolation, WhiteBoxModel, make_view)
from tracer.attacks.qeba import QEBA
from tracer.attacks.score_based import NES, Bandits
from tracer.attacks.square import BatchedSquare
from tracer.attacks.surfree import SurFree

__all__ = ["AdvertorchAttack", "ArtAttack", "ArtWhiteBox", "BatchedBoundary", "BatchedHopSkipJump",
           "BatchedSquare", "QEBA", "SurFree", "NES", "Bandits", "AttackSpec", "attack_copy",
           "shared_pool", "THREATS", "HardLabelOracle", "ScoreOracle", "WhiteBoxModel",
           "QueryBudgetExceeded", "ThreatModelViolation", "make_view"]
