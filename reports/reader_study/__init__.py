"""Visual Turing Test kit: blinded reader pages (make), scoring (score) and a gallery page."""
