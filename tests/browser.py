"""Headless Chromium for the browser tests (the docs site, JupyterLab): one place that finds the browser,
skips outside CI and fails in CI when it is missing, and never lets Selenium download a driver."""
import os, shutil
import pytest

INSTALL = 'apt-get install -y chromium chromium-driver   (Debian/Ubuntu; as root, or with sudo)'

def _chromium():
    for b in ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'):
        if shutil.which(b): return shutil.which(b)

def chromium_driver(what:str, window='1440,1000'):
    "A headless Chrome WebDriver; skips (outside CI) or fails (in CI) naming what is missing for test `what`."
    binary, driver_path = _chromium(), shutil.which('chromedriver')
    if not (binary and driver_path):
        missing = ', '.join(n for n, v in (('chromium', binary), ('chromedriver', driver_path)) if not v)
        msg = f'{what} needs headless Chromium and its driver; missing: {missing}. Install them with:\n    {INSTALL}'
        if os.environ.get('CI'): pytest.fail(f'CI must run {what}. {msg}')
        pytest.skip(msg)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for a in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', f'--window-size={window}',
              '--hide-scrollbars', '--no-first-run', '--disable-extensions', '--disable-background-networking'):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)  # explicit driver: no download
    d.set_page_load_timeout(60)
    return d
