"Run pytest and treat exit code 5 (no tests collected) as success, saying so."
import subprocess, sys
rc = subprocess.call([sys.executable, '-m', 'pytest', *sys.argv[1:]])
if rc == 5:
    print('pytest collected no tests (exit code 5); treating as success.')
    rc = 0
sys.exit(rc)
