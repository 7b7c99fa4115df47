"""Minimal-norm attacks: per sample, the smallest perturbation ‖δ‖ that fools the model (FMN, DDN, CW,
DeepFool, ALMA, EAD, σ-zero), each one public function in a module of its name, returning an
``AttackResult`` with ``distance`` (‖x_adv − x‖ where it succeeds, inf elsewhere); the knobs past steps and
norm in a frozen options class. ``advgrad`` re-exports them (``advgrad.fmn``)."""
