"""Attacks that only query the model: decision-based (the top-1 label) and score-based (the scores), each
one public function returning an ``AttackResult`` with ``queries``."""
