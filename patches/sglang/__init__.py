"""SGLang adapters (0.5.11-0.5.23), installed through SGLang's HookRegistry."""
