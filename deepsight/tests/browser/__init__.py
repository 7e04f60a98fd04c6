"""Browser tests: Debian's Chromium driven by Playwright against deepsight under uvicorn."""
