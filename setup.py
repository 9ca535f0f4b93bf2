"Packaging for cvkit. Metadata and requirements come from settings.ini; exact versions from constraints.txt."
from configparser import ConfigParser
from pathlib import Path
import shutil
import setuptools
from setuptools.command.build_py import build_py

cfg = ConfigParser(delimiters=['='])
cfg.read(Path(__file__).parent/'settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']
licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
lic = licenses[cfg['license']]
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
reqs = cfg.get('requirements', '').split()
dev_reqs = cfg.get('dev_requirements', '').split()
scripts = [o for o in cfg.get('console_scripts', '').split() if o]

class build_py_with_experiments(build_py):
    "Also copy the study notebooks, `experiments/*.ipynb` (their only source), into `cvkit/experiments/` of the build: package data of the wheel."
    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False): return      # an editable install reads the checkout's experiments/ itself
        dst = Path(self.build_lib)/cfg['lib_path']/'experiments'
        if dst.exists(): shutil.rmtree(dst)                   # no stale copy of a notebook since removed
        self.mkpath(str(dst))
        for nb in self._experiments(): self.copy_file(str(nb), str(dst/nb.name), preserve_mode=False)

    def _experiments(self):
        nbs = sorted((Path(__file__).parent/'experiments').glob('*.ipynb'))
        if not nbs: raise FileNotFoundError('setup.py: experiments/*.ipynb not found; `cvkit demo` needs them in the wheel '
                                            '(an sdist must carry them: see MANIFEST.in).')
        return nbs

    def get_outputs(self, include_bytecode=1):
        extra = [] if getattr(self, 'editable_mode', False) else \
            [str(Path(self.build_lib)/cfg['lib_path']/'experiments'/nb.name) for nb in self._experiments()]
        return super().get_outputs(include_bytecode) + extra

setuptools.setup(
    name=cfg['lib_name'], version=cfg['version'], description=cfg['description'],
    long_description=(Path(__file__).parent/'README.md').read_text(encoding='utf-8') if (Path(__file__).parent/'README.md').exists() else cfg['description'],
    long_description_content_type='text/markdown',
    author=cfg['author'], author_email=cfg['author_email'], license=lic[0], url=cfg['git_url'],
    keywords=cfg['keywords'].split(),
    classifiers=[f"Development Status :: {statuses[int(cfg['status'])]}", f"Intended Audience :: {cfg['audience']}",
                 f"License :: {lic[1]}", f"Natural Language :: {cfg['language']}",
                 'Programming Language :: Python :: 3.11', 'Programming Language :: Python :: 3.12'],
    packages=setuptools.find_packages(include=['cvkit', 'cvkit.*']), include_package_data=True,
    python_requires=f">={cfg['min_python']}",
    install_requires=reqs, extras_require={'dev': dev_reqs},
    entry_points={'console_scripts': scripts, 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    cmdclass={'build_py': build_py_with_experiments}, zip_safe=False)
