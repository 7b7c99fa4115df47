"""Helpers the tests share (tests/ is on sys.path: ``from helpers.cli import invoke``):

- ``cli``: the CLI in-process (click's runner) and in real processes, usage-error checks, file trees,
  small checkpoints;
- ``clirun``: several ``advgrad`` commands in one process (a program torchrun launches);
- ``distworker``: the program ``tests/test_distributed.py`` runs alone and under torchrun;
- ``batches``: digits as image folders and mixed batches;
- ``flipmodel``: a model with a closed-form margin and a reference PGD loop;
- ``model_files``: model files of every kind ``open_model`` takes (scripts, factories, exports);
- ``datafiles``: IDX sets, CIFAR-10 pickle batches and .npz sets written as their producers write them.
"""
