// The wallet page's entry point.

import './styles.css';
import { App } from './ui/app.js';

const root = document.querySelector<HTMLElement>('#app');
if (root) new App(root).start();
