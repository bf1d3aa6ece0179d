"""--edit-optimizer sgd: every group's Adam becomes plain SGD at a scaled rate, schedulers kept."""

import torch
from nerfstudio.engine.optimizers import AdamOptimizerConfig, Optimizers
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.plugins.registry import discover_methods

from ids_nerf.nerfstudio.optimizers import sgd_groups


def test_sgd_groups_scale_each_groups_rate_and_keep_the_schedulers():
    groups = discover_methods()[0]["ids-edit-splat"].optimizers
    sgd = sgd_groups(groups, lr_scale=100.0, momentum=0.5)
    assert set(sgd) == set(groups)
    for name, group in sgd.items():
        assert group["optimizer"].lr == groups[name]["optimizer"].lr * 100.0
        assert group["scheduler"] is groups[name]["scheduler"]
    assert isinstance(groups["means"]["optimizer"], AdamOptimizerConfig)  # the original is left alone


def test_sgd_steps_in_proportion_to_the_gradient():
    weight = torch.nn.Parameter(torch.zeros(2))
    config = {
        "fields": {
            "optimizer": AdamOptimizerConfig(lr=1e-3, eps=1e-15),
            "scheduler": ExponentialDecaySchedulerConfig(lr_final=1e-5, max_steps=10),
        }
    }
    optimizers = Optimizers(sgd_groups(config, lr_scale=1000.0), {"fields": [weight]})
    assert isinstance(optimizers.optimizers["fields"], torch.optim.SGD)
    weight.grad = torch.tensor([1e-6, 1e-2])
    optimizers.optimizer_step_all()
    # lr 1: a step of exactly the gradient (Adam would move both by about its lr, 1e-3)
    assert torch.allclose(weight.detach(), torch.tensor([-1e-6, -1e-2]))


def test_the_trainer_flag_exists_with_adam_as_default():
    config = discover_methods()[0]["ids-edit"]
    assert config.edit_optimizer == "adam" and config.sgd_lr_scale > 0
