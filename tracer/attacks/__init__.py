"""The attacker's side: threat-model views of a copy, attack adapters, evidence generation."""
from tracer.attacks.advertorch_adapter import AdvertorchAttack
from tracer.attacks.art_adapter import ArtDecisionAttack
from tracer.attacks.generate import AttackSpec, attack_copy, shared_pool
from tracer.attacks.oracle import (THREATS, HardLabelOracle, QueryBudgetExceeded, ScoreOracle,
                                   ThreatModelViolation, WhiteBoxModel, make_view)

__all__ = ["AdvertorchAttack", "ArtDecisionAttack", "AttackSpec", "attack_copy", "shared_pool",
           "THREATS", "HardLabelOracle", "ScoreOracle", "WhiteBoxModel", "QueryBudgetExceeded",
           "ThreatModelViolation", "make_view"]
