"""Minimal-norm attacks: per sample, the smallest perturbation ‖δ‖ that fools the model (FMN, DDN, CW,
DeepFool, σ-zero), each one public function returning an ``AttackResult`` with ``distance``."""
