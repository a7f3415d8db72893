"""The copywriting domain: channels and counting rules, frameworks, prompts, post-processing."""
