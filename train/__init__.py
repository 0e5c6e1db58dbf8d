"""The FireAct trainer: LoRA / 4-bit QLoRA on agent trajectories, YAML recipes, model cards, Hub publishing.

    from train.config import load_config
    from train.sft import main
    main(load_config("smollm2-135m-world", ["max_steps=20"]))

Heavy libraries (torch, transformers, TRL, PEFT) are imported inside the functions that use them.
"""
