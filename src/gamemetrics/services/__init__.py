"""One package per service; what two services share lives in events/, ports/ or adapters/."""
